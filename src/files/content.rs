//! What an upload really is: its type sniffed from its bytes (the client's `Content-Type` and
//! file name are claims, checked against the sniffed type, never trusted), and images
//! re-encoded.
//!
//! Accepted: PNG, JPEG, WebP and GIF images, PDF, and plain UTF-8 text. Everything else is
//! refused (415) — SVG, HTML and XML in particular, which a browser could run as a page.
//! Images are decoded within [`ImageLimits`] (each side at most `FILES_MAX_IMAGE_SIDE`, the
//! whole at most `FILES_MAX_IMAGE_PIXELS`, checked from the header before the bitmap is
//! allocated, and the decoder's allocations capped at `max_alloc` = pixels × 4 bytes, so a
//! decompression bomb is refused before it is allocated), downscaled to fit the purpose's box
//! (avatars 1,024 px, others 4,096 px on the long side) BEFORE they are turned upright by their
//! EXIF orientation (a 90° turn copies the bitmap: it copies the small one), and written anew:
//! JPEG stays JPEG (quality 85), the others become PNG (an animated GIF keeps its first frame).
//!
//! Memory of one inspection: the upload (≤ `FILES_MAX_BYTES`, dropped once decoded) plus at
//! most two bitmaps alive at once (decoded + downscaled, or downscaled + turned/converted),
//! each ≤ `max_alloc`: peak ≤ `FILES_MAX_BYTES` + 2 × `max_alloc` + the encoded output (≤ the
//! second bitmap). Defaults: 10 MiB + 2 × 64 MiB ≈ 138 MiB (see `store::UPLOADS_AT_ONCE`
//! for the per-process figure). The new file carries no metadata (no EXIF, no
//! GPS position, no comments) and nothing appended after the image (polyglots lose their
//! second half). PDF and text are stored as sent and only ever served as attachments.
//!
//! Pure functions, CPU-bound: callers run [`inspect`] on the blocking pool.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use crate::error::AppError;

/// The type a file is served with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    Png,
    Jpeg,
    Pdf,
    Text,
}

impl Served {
    pub fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Pdf => "application/pdf",
            Self::Text => "text/plain",
        }
    }

    pub fn parse(mime: &str) -> Option<Self> {
        match mime {
            "image/png" => Some(Self::Png),
            "image/jpeg" => Some(Self::Jpeg),
            "application/pdf" => Some(Self::Pdf),
            "text/plain" => Some(Self::Text),
            _ => None,
        }
    }

    /// Re-encoded raster images are the only files shown inline.
    pub fn is_image(self) -> bool {
        matches!(self, Self::Png | Self::Jpeg)
    }

    /// The extension the stored file's name gets.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Pdf => "pdf",
            Self::Text => "txt",
        }
    }
}

/// What the bytes are, by their magic numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    Png,
    Jpeg,
    Gif,
    Webp,
    Pdf,
    Text,
}

impl Sniffed {
    /// The media type of the bytes as sent.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Gif => "image/gif",
            Self::Webp => "image/webp",
            Self::Pdf => "application/pdf",
            Self::Text => "text/plain",
        }
    }

    fn is_image(self) -> bool {
        matches!(self, Self::Png | Self::Jpeg | Self::Gif | Self::Webp)
    }

    /// Media types a client may declare for these bytes.
    fn declarable(self) -> &'static [&'static str] {
        match self {
            Self::Png => &["image/png", "image/x-png"],
            Self::Jpeg => &["image/jpeg", "image/jpg", "image/pjpeg"],
            Self::Gif => &["image/gif"],
            Self::Webp => &["image/webp"],
            Self::Pdf => &["application/pdf", "application/x-pdf"],
            Self::Text => &["text/plain"],
        }
    }

    /// File name extensions that fit these bytes.
    fn extensions(self) -> &'static [&'static str] {
        match self {
            Self::Png => &["png"],
            Self::Jpeg => &["jpg", "jpeg", "jpe", "jfif"],
            Self::Gif => &["gif"],
            Self::Webp => &["webp"],
            Self::Pdf => &["pdf"],
            Self::Text => &["txt", "text", "log", "md"],
        }
    }
}

/// The accepted types, for error messages.
pub const ACCEPTED: &str =
    "image/png, image/jpeg, image/webp, image/gif, application/pdf or text/plain";

fn unsupported() -> AppError {
    AppError::UnsupportedMediaTypeExpected(ACCEPTED)
}

/// Sniff `bytes`. Unknown, markup (HTML, SVG, XML) or binary → 415.
pub fn sniff(bytes: &[u8]) -> Result<Sniffed, AppError> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Ok(Sniffed::Png);
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok(Sniffed::Jpeg);
    }
    if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        return Ok(Sniffed::Gif);
    }
    if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP".as_slice()) {
        return Ok(Sniffed::Webp);
    }
    if bytes.starts_with(b"%PDF-") {
        return Ok(Sniffed::Pdf);
    }
    let text = bytes
        .strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .unwrap_or(bytes);
    let Ok(text) = std::str::from_utf8(text) else {
        return Err(unsupported());
    };
    let control = text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\u{0c}'));
    // Markup is not plain text: a page or an SVG must never be stored as "text".
    let markup = text.trim_start().starts_with('<');
    if text.trim().is_empty() || control || markup {
        return Err(unsupported());
    }
    Ok(Sniffed::Text)
}

fn mismatch(detail: String) -> AppError {
    AppError::Unprocessable {
        code: "type_mismatch",
        detail,
    }
}

/// Check the client's claims (the part's `Content-Type`, the file name's extension) against
/// the sniffed type: a claim that disagrees is refused (422 `type_mismatch`). No claim, or
/// `application/octet-stream`, claims nothing.
pub fn check_claims(
    sniffed: Sniffed,
    declared: Option<&str>,
    file_name: Option<&str>,
) -> Result<(), AppError> {
    if let Some(declared) = declared {
        let essence = declared
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if !essence.is_empty()
            && essence != "application/octet-stream"
            && !sniffed.declarable().contains(&essence.as_str())
        {
            return Err(mismatch(format!(
                "The part was declared {essence}, but its content is {}.",
                sniffed.mime()
            )));
        }
    }
    if let Some((_, ext)) = file_name.and_then(|n| n.rsplit_once('.')) {
        let ext = ext.to_ascii_lowercase();
        if !sniffed.extensions().contains(&ext.as_str()) {
            return Err(mismatch(format!(
                "The file name ends in .{}, but its content is {}.",
                ext.chars().take(16).collect::<String>(),
                sniffed.mime()
            )));
        }
    }
    Ok(())
}

/// Bounds of image decoding (from `FilesConfig`).
#[derive(Debug, Clone, Copy)]
pub struct ImageLimits {
    /// Largest side, in pixels.
    pub max_side: u32,
    /// Largest width × height.
    pub max_pixels: u64,
    /// Longest side of the stored image: larger images are downscaled to fit.
    pub fit: u32,
}

impl ImageLimits {
    /// The decoder's allocation cap: an RGBA8 bitmap of the largest accepted image (16-bit
    /// images get half the pixels) and a little room for the decoder's own tables.
    pub fn max_alloc(&self) -> u64 {
        self.max_pixels.saturating_mul(4).saturating_add(1 << 20)
    }
}

/// Long side of a stored avatar.
pub const AVATAR_FIT: u32 = 1024;
/// Long side of any other stored image.
pub const IMAGE_FIT: u32 = 4096;

/// An upload as it will be stored.
#[derive(Debug)]
pub struct Inspected {
    pub served: Served,
    pub bytes: Vec<u8>,
}

/// Sniff, check the claims, and re-encode images. `image_only`: the purpose needs a raster
/// image (avatars, article images): anything else is 422 `not_an_image`.
pub fn inspect(
    bytes: Vec<u8>,
    declared: Option<&str>,
    file_name: Option<&str>,
    image_only: bool,
    limits: &ImageLimits,
) -> Result<Inspected, AppError> {
    let sniffed = sniff(&bytes)?;
    check_claims(sniffed, declared, file_name)?;
    if image_only && !sniffed.is_image() {
        return Err(AppError::Unprocessable {
            code: "not_an_image",
            detail: format!(
                "This purpose needs a PNG, JPEG, WebP or GIF image, not {}.",
                sniffed.mime()
            ),
        });
    }
    match sniffed {
        Sniffed::Pdf => Ok(Inspected {
            served: Served::Pdf,
            bytes,
        }),
        Sniffed::Text => Ok(Inspected {
            served: Served::Text,
            bytes,
        }),
        Sniffed::Png => reencode(bytes, ImageFormat::Png, limits),
        Sniffed::Jpeg => reencode(bytes, ImageFormat::Jpeg, limits),
        Sniffed::Gif => reencode(bytes, ImageFormat::Gif, limits),
        Sniffed::Webp => reencode(bytes, ImageFormat::WebP, limits),
    }
}

fn unreadable_image(detail: &str) -> AppError {
    AppError::Unprocessable {
        code: "image_rejected",
        detail: detail.to_owned(),
    }
}

/// Decode with limits, downscale to fit, turn upright, and write a fresh PNG or JPEG. At most
/// two bitmaps are alive at any point (see the module header).
fn reencode(
    bytes: Vec<u8>,
    format: ImageFormat,
    limits: &ImageLimits,
) -> Result<Inspected, AppError> {
    let rejected =
        || unreadable_image("The image cannot be decoded, or its dimensions exceed the limit.");
    let (orientation, img) = {
        let mut reader = ImageReader::with_format(Cursor::new(bytes.as_slice()), format);
        let mut decoder_limits = Limits::default();
        decoder_limits.max_image_width = Some(limits.max_side);
        decoder_limits.max_image_height = Some(limits.max_side);
        decoder_limits.max_alloc = Some(limits.max_alloc());
        reader.limits(decoder_limits);
        let mut decoder = reader.into_decoder().map_err(|_| rejected())?;
        let (w, h) = decoder.dimensions();
        // The pixel count, from the header, before any bitmap exists.
        if u64::from(w).saturating_mul(u64::from(h)) > limits.max_pixels {
            return Err(rejected());
        }
        let orientation = decoder.orientation().ok();
        let img = DynamicImage::from_decoder(decoder).map_err(|_| rejected())?;
        (orientation, img)
    };
    drop(bytes);
    // Downscale first: the original is dropped as soon as the smaller copy exists.
    let mut img = if img.width() > limits.fit || img.height() > limits.fit {
        img.resize(
            limits.fit,
            limits.fit,
            image::imageops::FilterType::Triangle,
        )
    } else {
        img
    };
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    let mut out = Vec::new();
    let served = if format == ImageFormat::Jpeg {
        let img = match img {
            DynamicImage::ImageLuma8(_) | DynamicImage::ImageRgb8(_) => img,
            other => DynamicImage::ImageRgb8(other.to_rgb8()),
        };
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85);
        img.write_with_encoder(encoder)
            .map_err(|e| AppError::Internal(format!("jpeg encode: {e}")))?;
        Served::Jpeg
    } else {
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .map_err(|e| AppError::Internal(format!("png encode: {e}")))?;
        Served::Png
    };
    Ok(Inspected { served, bytes: out })
}

/// A file name safe to store and to send back in `Content-Disposition`: the last path
/// component, without control (`Cc`) or format (`Cf`: bidirectional overrides and isolates
/// such as U+202E, zero-width characters, U+FEFF) characters or leading dots, at most 120
/// characters, with the
/// extension of the served type (a GIF re-encoded as PNG is named `.png`). Empty → `file`.
pub fn sanitise_name(raw: Option<&str>, served: Served) -> String {
    let raw = raw.unwrap_or_default();
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !is_format(*c) && !matches!(c, '"' | '/' | '\\'))
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.');
    let stem = match cleaned.rsplit_once('.') {
        Some((stem, _)) => stem,
        None => cleaned,
    };
    let stem: String = stem.trim().chars().take(120).collect();
    let stem = if stem.is_empty() {
        "file".to_owned()
    } else {
        stem
    };
    format!("{stem}.{}", served.extension())
}

/// Unicode general category `Cf` (format characters), which can make a name display as
/// something else (`invoice\u{202E}fdp.exe` shows as `invoiceexe.pdf`) or hide characters.
fn is_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{0600}'..='\u{0605}' | '\u{061C}' | '\u{06DD}' | '\u{070F}'
        | '\u{0890}'..='\u{0891}' | '\u{08E2}' | '\u{180E}' | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}' | '\u{110BD}' | '\u{110CD}'
        | '\u{13430}'..='\u{1343F}' | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0001}' | '\u{E0020}'..='\u{E007F}')
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(w, h, image::Rgb([200, 30, 30]));
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn types_come_from_the_bytes() {
        assert_eq!(sniff(&png(2, 2)).unwrap(), Sniffed::Png);
        assert_eq!(sniff(b"%PDF-1.7\n...").unwrap(), Sniffed::Pdf);
        assert_eq!(sniff("Hello, wörld\n".as_bytes()).unwrap(), Sniffed::Text);
        for refused in [
            b"<svg xmlns='http://www.w3.org/2000/svg'></svg>".as_slice(),
            b"  <!doctype html><script>alert(1)</script>",
            b"<?xml version='1.0'?><svg/>",
            b"\x00\x01\x02binary",
            b"MZ\x90\x00",
            b"",
        ] {
            assert!(sniff(refused).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn claims_must_agree_with_the_bytes() {
        assert!(check_claims(Sniffed::Png, Some("image/png"), Some("a.PNG")).is_ok());
        assert!(check_claims(Sniffed::Png, Some("application/octet-stream"), None).is_ok());
        assert!(check_claims(Sniffed::Png, None, Some("noext")).is_ok());
        assert!(check_claims(Sniffed::Png, Some("image/jpeg"), None).is_err());
        assert!(check_claims(Sniffed::Png, None, Some("a.jpg")).is_err());
        assert!(check_claims(Sniffed::Text, Some("text/html"), None).is_err());
        assert!(check_claims(Sniffed::Text, None, Some("x.html")).is_err());
    }

    const SMALL: ImageLimits = ImageLimits {
        max_side: 64,
        max_pixels: 64 * 64,
        fit: 4096,
    };

    #[test]
    fn images_are_rewritten_and_bombs_refused() {
        let out = inspect(png(3, 2), Some("image/png"), Some("x.png"), true, &SMALL).unwrap();
        assert_eq!(out.served, Served::Png);
        let back = image::load_from_memory(&out.bytes).unwrap();
        assert_eq!((back.width(), back.height()), (3, 2));
        // Over the side limit.
        assert!(inspect(png(65, 2), None, None, true, &SMALL).is_err());
        // A truncated image.
        let mut cut = png(8, 8);
        cut.truncate(cut.len() / 2);
        assert!(inspect(cut, None, None, true, &SMALL).is_err());
        // Not an image where one is needed.
        assert!(inspect(b"%PDF-1.4".to_vec(), None, None, true, &SMALL).is_err());
    }

    #[test]
    fn the_pixel_count_is_capped_not_only_the_sides() {
        // Each side within the limit, the product over it: refused from the header.
        let limits = ImageLimits {
            max_side: 1000,
            max_pixels: 10_000,
            fit: 4096,
        };
        assert!(inspect(png(100, 100), None, None, true, &limits).is_ok());
        let err = inspect(png(101, 100), None, None, true, &limits).unwrap_err();
        assert!(matches!(
            err,
            AppError::Unprocessable {
                code: "image_rejected",
                ..
            }
        ));
        // The decoder's allocation cap follows the pixel cap (RGBA8 of the largest image).
        assert_eq!(limits.max_alloc(), 40_000 + (1 << 20));
    }

    #[test]
    fn large_images_are_downscaled_to_their_box_keeping_the_ratio() {
        let limits = ImageLimits {
            max_side: 4096,
            max_pixels: 4096 * 4096,
            fit: 32,
        };
        let out = inspect(png(128, 16), None, None, true, &limits).unwrap();
        let back = image::load_from_memory(&out.bytes).unwrap();
        assert_eq!((back.width(), back.height()), (32, 4));
        let out = inspect(png(20, 10), None, None, true, &limits).unwrap();
        let back = image::load_from_memory(&out.bytes).unwrap();
        assert_eq!((back.width(), back.height()), (20, 10));
    }

    #[test]
    fn names_are_sanitised() {
        assert_eq!(
            sanitise_name(Some("../../etc/passwd"), Served::Text),
            "passwd.txt"
        );
        assert_eq!(
            sanitise_name(Some("C:\\x\\photo.gif"), Served::Png),
            "photo.png"
        );
        assert_eq!(
            sanitise_name(Some(".htaccess"), Served::Text),
            "htaccess.txt"
        );
        assert_eq!(sanitise_name(Some("a\"b\r\n.pdf"), Served::Pdf), "ab.pdf");
        assert_eq!(sanitise_name(None, Served::Jpeg), "file.jpg");
    }

    #[test]
    fn names_lose_direction_and_invisible_format_characters() {
        // Right-to-left override: would display as "invoiceexe.pdf".
        assert_eq!(
            sanitise_name(Some("invoice\u{202E}exe.pdf"), Served::Pdf),
            "invoiceexe.pdf"
        );
        for c in [
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{200E}',
            '\u{200F}',
            '\u{202A}',
            '\u{202B}',
            '\u{202C}',
            '\u{202D}',
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{E0041}',
        ] {
            let name = format!("re{c}port.txt");
            assert_eq!(
                sanitise_name(Some(&name), Served::Text),
                "report.txt",
                "{c:?}"
            );
        }
        // Ordinary letters of any script stay.
        assert_eq!(
            sanitise_name(Some("تقرير é.txt"), Served::Text),
            "تقرير é.txt"
        );
    }
}
