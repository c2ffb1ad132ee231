//! Markdown → safe HTML for articles and news.
//!
//! Pipeline: `pulldown-cmark` (CommonMark + tables + strikethrough) → HTML → `ammonia` with a
//! strict allow list. Invariants:
//! - Raw HTML in the source has no effect: pulldown's HTML events are turned into text before
//!   rendering, so `<script>` written in Markdown shows as text; ammonia is the second gate.
//! - Only structural tags survive (paragraphs, headings, emphasis, lists, quotes, code, tables,
//!   links, images); no `script`, `style`, `iframe`, `svg`, `form`, event handler, `style` or
//!   `class` attribute. Link schemes: `http`, `https`, `mailto` and relative URLs; every link
//!   gets `rel="noopener noreferrer nofollow"`.
//! - An image survives only when its source is a same-origin file URL `/api/v1/files/{uuid}`
//!   (external images would leak readers' IP addresses to a third party); any other image is
//!   replaced by its alt text. [`referenced_file_ids`] lists the file ids so referenced.
//! - [`sanitize_stored`] runs the same sanitiser on HTML read back from the database (defence
//!   in depth: the database cannot check that a row's HTML came from this renderer).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};
use uuid::Uuid;

/// The one path prefix an image source may have.
const FILE_URL_PREFIX: &str = "/api/v1/files/";

/// The file id of a same-origin file URL (`/api/v1/files/{uuid}`, the canonical hyphenated
/// form, nothing after it), or `None`.
pub fn file_id_of(url: &str) -> Option<Uuid> {
    let rest = url.strip_prefix(FILE_URL_PREFIX)?;
    if rest.len() != 36 {
        return None;
    }
    let id = Uuid::try_parse(rest).ok()?;
    (id.hyphenated().to_string() == rest.to_ascii_lowercase()).then_some(id)
}

fn options() -> Options {
    Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH
}

/// The source's events with raw HTML made inert and disallowed images replaced by their text.
fn safe_events(markdown: &str) -> Vec<Event<'_>> {
    let mut out = Vec::new();
    // Depth inside a dropped image (its alt text is kept as plain text).
    let mut dropped_images = 0usize;
    for event in Parser::new_ext(markdown, options()) {
        match event {
            Event::Html(raw) | Event::InlineHtml(raw) => out.push(Event::Text(raw)),
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => match file_id_of(&dest_url) {
                Some(file) if dropped_images == 0 => out.push(Event::Start(Tag::Image {
                    link_type,
                    dest_url: CowStr::from(format!("{FILE_URL_PREFIX}{file}")),
                    title,
                    id,
                })),
                _ => dropped_images += 1,
            },
            Event::End(TagEnd::Image) if dropped_images > 0 => dropped_images -= 1,
            other => out.push(other),
        }
    }
    out
}

/// The allow-list sanitiser (built once).
static SANITIZER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let tags: HashSet<&'static str> = [
        "p",
        "br",
        "hr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "strong",
        "em",
        "del",
        "blockquote",
        "code",
        "pre",
        "ul",
        "ol",
        "li",
        "a",
        "img",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
    ]
    .into_iter()
    .collect();
    let attributes: HashMap<&'static str, HashSet<&'static str>> = [
        ("a", ["href", "title"].into_iter().collect()),
        ("img", ["src", "alt", "title"].into_iter().collect()),
        ("ol", ["start"].into_iter().collect()),
    ]
    .into_iter()
    .collect();
    let mut b = ammonia::Builder::empty();
    b.tags(tags)
        .tag_attributes(attributes)
        .clean_content_tags(["script", "style"].into_iter().collect())
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        .url_relative(ammonia::UrlRelative::PassThrough)
        .link_rel(Some("noopener noreferrer nofollow"))
        .strip_comments(true)
        .attribute_filter(|element, attribute, value| {
            if element == "img" && attribute == "src" {
                // Same-origin file URLs only; the image keeps no source otherwise.
                return file_id_of(value).map(|id| Cow::Owned(format!("{FILE_URL_PREFIX}{id}")));
            }
            Some(Cow::Borrowed(value))
        });
    b
});

/// Render Markdown to sanitised HTML.
pub fn render(markdown: &str) -> String {
    let mut html = String::with_capacity(markdown.len().saturating_mul(5) / 4);
    pulldown_cmark::html::push_html(&mut html, safe_events(markdown).into_iter());
    SANITIZER.clean(&html).to_string()
}

/// Sanitise HTML read back from storage with the same allow list.
pub fn sanitize_stored(html: &str) -> String {
    SANITIZER.clean(html).to_string()
}

/// The ids of the files the Markdown's allowed images show, first occurrence first, once each.
pub fn referenced_file_ids(markdown: &str) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for event in safe_events(markdown) {
        if let Event::Start(Tag::Image { dest_url, .. }) = event
            && let Some(id) = file_id_of(&dest_url)
            && !ids.contains(&id)
        {
            ids.push(id);
        }
    }
    ids
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// Nothing executable or styling may survive, whatever the input: every tag of the output
    /// is an allowed one with allowed attributes, and no attribute carries a script URL. (Text
    /// such as `onerror=` outside a tag is harmless: `<` in text is always `&lt;`.)
    fn assert_clean(html: &str) {
        const ALLOWED: &[&str] = &[
            "p",
            "br",
            "hr",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "strong",
            "em",
            "del",
            "blockquote",
            "code",
            "pre",
            "ul",
            "ol",
            "li",
            "a",
            "img",
            "table",
            "thead",
            "tbody",
            "tr",
            "th",
            "td",
        ];
        assert!(!html.contains("<!--"), "comment survived in {html:?}");
        for piece in html.split('<').skip(1) {
            let tag = piece.split('>').next().unwrap().to_ascii_lowercase();
            let name = tag
                .trim_start_matches('/')
                .split(|c: char| c.is_whitespace() || c == '/')
                .next()
                .unwrap();
            assert!(ALLOWED.contains(&name), "tag {name:?} survived in {html:?}");
            for needle in [
                "javascript:",
                "vbscript:",
                "data:",
                "on",
                "style=",
                "srcdoc",
                "class=",
            ] {
                let hit = if needle == "on" {
                    // An event handler attribute: ` on…=`.
                    tag.split_whitespace()
                        .skip(1)
                        .any(|attr| attr.starts_with("on"))
                } else {
                    tag.contains(needle)
                };
                assert!(!hit, "{needle:?} survived in tag {tag:?} of {html:?}");
            }
            if name == "img" {
                assert!(
                    tag.contains("src=\"/api/v1/files/") || !tag.contains("src="),
                    "foreign image in {html:?}"
                );
            }
        }
    }

    const XSS: &[&str] = &[
        "<script>alert(1)</script>",
        "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
        "<img src=x onerror=alert(1)>",
        "<img src=\"/api/v1/files/0190a0a0-0000-7000-8000-000000000001\" onerror=\"alert(1)\">",
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        "[click](java\tscript:alert(1))",
        "[click](&#106;avascript:alert(1))",
        "<a href=\"javascript:alert(1)\">x</a>",
        "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "![x](data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=)",
        "<svg onload=alert(1)><circle/></svg>",
        "<svg><script>alert(1)</script></svg>",
        "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
        "<iframe src=\"https://evil.example\"></iframe>",
        "<iframe srcdoc=\"<script>alert(1)</script>\"></iframe>",
        "<style>body{display:none}</style>",
        "<p style=\"background:url(javascript:alert(1))\">x</p>",
        "<div onclick=\"alert(1)\">x</div>",
        "<form action=\"https://evil.example\"><input name=p></form>",
        "<object data=\"x.swf\"></object><embed src=\"x.swf\">",
        "<meta http-equiv=\"refresh\" content=\"0;url=https://evil.example\">",
        "<base href=\"https://evil.example/\">",
        "<link rel=stylesheet href=\"https://evil.example/x.css\">",
        "<!-- <script>alert(1)</script> -->",
        "**bold <script>alert(1)</script>**",
        "> quote <img src=x onerror=alert(1)>",
        "* item [x](javascript:alert(1))",
        "`<script>` in code and ```\n<script>alert(1)</script>\n```",
        "<a href=\"https://ok.example\" onmouseover=\"alert(1)\">hover</a>",
        "[a](<javascript:alert(1)>)",
        "[ref]\n\n[ref]: javascript:alert(1)",
        "![x](https://tracker.example/pixel.png)",
        "![x](//tracker.example/pixel.png)",
        "<img src=\"https://tracker.example/p.png\">",
        "<scr<script>ipt>alert(1)</script>",
        "<<script>script>alert(1)<</script>/script>",
        "<a href=\"&#x6A;avascript:alert(1)\">x</a>",
        "<details open ontoggle=alert(1)>",
        "<video><source onerror=\"alert(1)\"></video>",
    ];

    #[test]
    fn the_xss_corpus_comes_out_clean() {
        for input in XSS {
            let html = render(input);
            assert_clean(&html);
            // Stored HTML sanitised again is still clean, and so is raw HTML fed straight in.
            assert_clean(&sanitize_stored(&html));
            assert_clean(&sanitize_stored(input));
        }
    }

    #[test]
    fn raw_html_in_markdown_shows_as_text() {
        let html = render("Hello <b onclick=x>world</b>");
        assert!(
            html.contains("&lt;b onclick=x&gt;world&lt;/b&gt;"),
            "{html}"
        );
        assert!(!html.contains("<b"), "{html}");
    }

    #[test]
    fn markdown_structure_survives() {
        let html = render(
            "# Title\n\nSome **bold** and *em* and ~~old~~.\n\n- a\n- b\n\n> q\n\n`c`\n\n| h |\n|---|\n| d |\n",
        );
        for tag in [
            "<h1>",
            "<strong>bold</strong>",
            "<em>em</em>",
            "<del>old</del>",
            "<li>a</li>",
            "<blockquote>",
            "<code>c</code>",
            "<table>",
            "<td>d</td>",
        ] {
            assert!(html.contains(tag), "{tag} missing from {html}");
        }
    }

    #[test]
    fn links_get_a_safe_rel_and_keep_safe_schemes() {
        let html = render(
            "[site](https://example.org/a?b=c) [mail](mailto:a@example.org) [rel](/api/v1/articles)",
        );
        assert!(
            html.contains("href=\"https://example.org/a?b=c\""),
            "{html}"
        );
        assert!(html.contains("href=\"mailto:a@example.org\""), "{html}");
        assert!(html.contains("href=\"/api/v1/articles\""), "{html}");
        assert_eq!(
            html.matches("rel=\"noopener noreferrer nofollow\"").count(),
            3,
            "{html}"
        );
        let bad = render("[x](javascript:alert(1))");
        assert!(!bad.contains("href"), "{bad}");
    }

    #[test]
    fn only_same_origin_file_images_survive() {
        let id = Uuid::now_v7();
        let md = format!(
            "![ok](/api/v1/files/{id} \"t\") ![ext](https://cdn.example/{id}.png) ![rel](/api/v1/files/{id}/../x) ![upper](/api/v1/files/{})",
            id.hyphenated().to_string().to_uppercase()
        );
        let html = render(&md);
        assert_eq!(html.matches("<img").count(), 2, "{html}");
        assert!(
            html.contains(&format!("src=\"/api/v1/files/{id}\"")),
            "{html}"
        );
        assert!(!html.contains("cdn.example"), "{html}");
        assert!(html.contains("ext"), "alt text kept: {html}");
        assert_eq!(referenced_file_ids(&md), vec![id]);
        // Raw <img> is text, never an image, even with an allowed source.
        let raw = render(&format!("<img src=\"/api/v1/files/{id}\">"));
        assert!(!raw.contains("<img"), "{raw}");
        // A stored <img> with a foreign source loses its source.
        let stored = sanitize_stored("<img src=\"https://tracker.example/p.png\" alt=\"a\">");
        assert!(!stored.contains("tracker"), "{stored}");
    }

    #[test]
    fn referenced_file_ids_are_unique_and_ordered() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let md = format!(
            "![1](/api/v1/files/{b})\n\n![2](/api/v1/files/{a})\n\n![3](/api/v1/files/{b})\n\n[link](/api/v1/files/{a})\n\n![x](/api/v1/files/not-a-uuid)"
        );
        assert_eq!(referenced_file_ids(&md), vec![b, a]);
        assert!(referenced_file_ids("no images").is_empty());
    }

    #[test]
    fn file_urls_are_exact() {
        let id = Uuid::now_v7();
        assert_eq!(file_id_of(&format!("/api/v1/files/{id}")), Some(id));
        assert_eq!(file_id_of(&format!("/api/v1/files/{id}?x=1")), None);
        assert_eq!(file_id_of(&format!("https://evil/api/v1/files/{id}")), None);
        assert_eq!(file_id_of(&format!("/api/v1/files/{}", id.simple())), None);
        assert_eq!(file_id_of("/api/v1/files/"), None);
    }
}
