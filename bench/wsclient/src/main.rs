//! The WebSocket load client of `bench/ws.sh` (issue 12, item 8). Not part of the server: its
//! own workspace, built by the script into `target/wsclient`.
//!
//! ```text
//! wsclient hold   --addr 127.0.0.1:8080 --tokens T --n 10000 --rate 500 --hold 30 [--pid P]
//!                 [--read-buffer 4096]
//! wsclient fanout --send 127.0.0.1:8080 --recv 127.0.0.1:8081 --recv-tokens T --rooms R
//!                 --send-tokens S [--receivers 100 --senders 4 --rate 50 --count 1500
//!                 --warmup 100 --body-bytes 100 --out F --label L]
//! wsclient subscribe --addr 127.0.0.1:8080 --tokens T --line 1 --room C [--after N]
//! wsclient server --addr 127.0.0.1:8095 [--read-buffer N]
//! wsclient aead   [--n 200000 --body-bytes 100]
//! ```
//!
//! Token files hold "<host> <access token>" per line (bench/sched_tokens.py); a socket sends
//! `Host: <host>:<port>` and `Sec-WebSocket-Protocol: serein.v1, bearer.<token>`, as a browser
//! would. One thread (a current-thread runtime) drives every socket, so the client takes as
//! little of the machine as possible; pings are answered by tungstenite while a socket is read.
//!
//! - `hold`: opens n sockets at `rate` per second (socket j uses token j mod lines), waits for
//!   each one's `ready`, holds them `hold` seconds doing nothing but answering the server's
//!   pings, then closes them. With `--pid`, samples the server's VmRSS, open descriptors and CPU
//!   (idle before, every second, with the sockets held, after closing). Prints `RESULT` lines.
//! - `fanout`: `receivers` sockets on `--recv` (receiver k = token line k, subscribed to the
//!   consultation on line k of `--rooms`, from the cursor after it if any), `senders` sockets on `--send` (token line 1 of
//!   `--send-tokens`: the rooms' other participant). Message i (warm-up first, not counted) is
//!   sent at start + i / rate as `chat.send` into room i mod receivers by sender i mod senders;
//!   its body carries this run's id, i and the send time (µs on this process's monotonic
//!   clock). A receiver takes the latency from the decrypted body of its `chat.message`: the
//!   whole path (send transaction, NOTIFY, the other server's listener, the receiving
//!   connection's re-read under its own policies and decryption, the socket write).
//! - `subscribe`: one socket joins one room (from `--after`, or from the start) and reports the
//!   backlog it received and the `subscribed` answer, or how the server closed it.
//! - `server`: a bare tokio-tungstenite server (handshake like the gateway's, then reads only):
//!   the WebSocket layer's own memory per socket, for comparison.
//! - `aead`: the server's open of one message body in isolation (src/crypto/sealed.rs
//!   `open_with` + `Aad::encode`: AAD built, key schedule, AES-256-GCM decrypt, UTF-8 check).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

static START: OnceLock<Instant> = OnceLock::new();

/// Microseconds since this process started (one monotonic clock for senders and receivers).
fn now_us() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

struct Args(BTreeMap<String, String>);

impl Args {
    fn parse(v: &[String]) -> Self {
        let mut m = BTreeMap::new();
        let mut it = v.iter();
        while let Some(k) = it.next() {
            let k = k
                .strip_prefix("--")
                .unwrap_or_else(|| die(&format!("unexpected argument {k}")));
            let val = it
                .next()
                .unwrap_or_else(|| die(&format!("--{k} needs a value")));
            m.insert(k.to_owned(), val.clone());
        }
        Self(m)
    }
    fn s(&self, k: &str) -> String {
        self.0
            .get(k)
            .cloned()
            .unwrap_or_else(|| die(&format!("--{k} is required")))
    }
    fn opt(&self, k: &str) -> Option<String> {
        self.0.get(k).cloned()
    }
    fn n<T: std::str::FromStr>(&self, k: &str, default: T) -> T {
        match self.0.get(k) {
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| die(&format!("--{k}: not a number: {v}"))),
            None => default,
        }
    }
}

fn die(msg: &str) -> ! {
    eprintln!("wsclient: {msg}");
    std::process::exit(2)
}

fn read_tokens(path: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| die(&format!("{path}: {e}")));
    let v: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(h, t)| (h.to_owned(), t.trim().to_owned()))
        .collect();
    if v.is_empty() {
        die(&format!("no tokens in {path}"));
    }
    v
}

fn read_lines(path: &str) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| die(&format!("{path}: {e}")));
    text.lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Open one authenticated socket and wait for its `ready` event.
async fn open(addr: &str, host: &str, token: &str, read_buffer: usize) -> Result<Ws, String> {
    let port = addr.rsplit_once(':').map_or("80", |(_, p)| p);
    let mut req = format!("ws://{addr}/api/v1/ws")
        .into_client_request()
        .map_err(|e| format!("request: {e}"))?;
    let h = req.headers_mut();
    h.insert(
        "host",
        format!("{host}:{port}")
            .parse()
            .map_err(|_| "bad host".to_owned())?,
    );
    h.insert(
        "sec-websocket-protocol",
        format!("serein.v1, bearer.{token}")
            .parse()
            .map_err(|_| "bad token".to_owned())?,
    );
    // A small read buffer (4 KiB unless --read-buffer), so that the client weighs little:
    // tungstenite's default, 128 KiB, is allocated per socket and zero-filled on every read.
    let config = WebSocketConfig::default()
        .read_buffer_size(read_buffer)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(config), true)
        .await
        .map_err(|e| match e {
            tungstenite::Error::Http(r) => format!("http {}", r.status().as_u16()),
            tungstenite::Error::Io(e) => format!("io {:?}", e.kind()),
            e => {
                let mut s = format!("{e}");
                s.truncate(60);
                s
            }
        })?;
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
            Err(_) => return Err("no ready within 20 s".into()),
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                if v["type"] == "ready" {
                    return Ok(ws);
                }
                return Err(format!("first event {}", v["type"]));
            }
            Ok(Some(Ok(Message::Close(c)))) => {
                return Err(format!("closed {}", c.map_or(0, |c| u16::from(c.code))));
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(format!("read {e}")),
            Ok(None) => return Err("eof before ready".into()),
        }
    }
}

fn bump(m: &Mutex<BTreeMap<String, u64>>, k: String) {
    *m.lock().unwrap().entry(k).or_default() += 1;
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64
}

// ----------------------------------------------------------------------------------------------
// hold

#[derive(Default)]
struct HoldStats {
    ready: AtomicU64,
    open_now: AtomicI64,
    pings: AtomicU64,
    failed: Mutex<BTreeMap<String, u64>>,
    ended: Mutex<BTreeMap<String, u64>>,
    handshake_us: Mutex<Vec<u64>>,
    pings_held: Mutex<Vec<u32>>,
}

struct Proc {
    pid: u32,
    hz: f64,
}

impl Proc {
    fn rss_kb(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
            })
            .unwrap_or(0)
    }
    fn cpu_s(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .ok()
            .and_then(|s| {
                let rest = s.rsplit_once(')')?.1;
                let f: Vec<&str> = rest.split_whitespace().collect();
                // fields 14 and 15 of stat (utime, stime) are 11 and 12 after the ')'.
                Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / self.hz)
            })
            .unwrap_or(f64::NAN)
    }
    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid)).map_or(0, |d| d.count())
    }
}

fn self_rss_kb() -> u64 {
    Proc {
        pid: std::process::id(),
        hz: 100.0,
    }
    .rss_kb()
}

async fn hold_conn(
    addr: Arc<str>,
    host: String,
    token: String,
    read_buffer: usize,
    mut stop: watch::Receiver<bool>,
    stats: Arc<HoldStats>,
) {
    let t0 = Instant::now();
    let mut ws = match open(&addr, &host, &token, read_buffer).await {
        Ok(ws) => ws,
        Err(e) => {
            bump(&stats.failed, e);
            return;
        }
    };
    stats
        .handshake_us
        .lock()
        .unwrap()
        .push(t0.elapsed().as_micros() as u64);
    stats.ready.fetch_add(1, Ordering::Relaxed);
    stats.open_now.fetch_add(1, Ordering::Relaxed);
    let mut pings = 0u32;
    let ended: Option<String> = loop {
        tokio::select! {
            _ = stop.changed() => break None,
            f = ws.next() => match f {
                Some(Ok(Message::Ping(_))) => {
                    pings += 1;
                    stats.pings.fetch_add(1, Ordering::Relaxed);
                }
                Some(Ok(Message::Close(c))) => {
                    break Some(format!("closed by server {}", c.map_or(0, |c| u16::from(c.code))));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break Some(format!("read error {e}")),
                None => break Some("eof".into()),
            }
        }
    };
    stats.open_now.fetch_sub(1, Ordering::Relaxed);
    match ended {
        None => {
            stats.pings_held.lock().unwrap().push(pings);
            let _ = tokio::time::timeout(Duration::from_secs(10), ws.close(None)).await;
            // Read until the server's Close answer (or give up).
            let _ = tokio::time::timeout(Duration::from_secs(10), async {
                while let Some(Ok(_)) = ws.next().await {}
            })
            .await;
        }
        Some(why) => bump(&stats.ended, why),
    }
}

async fn hold(a: Args) {
    let addr: Arc<str> = a.s("addr").into();
    let tokens = read_tokens(&a.s("tokens"));
    let n: usize = a.n("n", 10_000);
    let rate: f64 = a.n("rate", 500.0);
    let hold_s: f64 = a.n("hold", 30.0);
    let read_buffer: usize = a.n("read-buffer", 4096);
    let server = a.opt("pid").map(|p| Proc {
        pid: p.parse().unwrap_or_else(|_| die("--pid: not a pid")),
        hz: a.n("hz", 100.0),
    });
    let stats = Arc::new(HoldStats::default());
    let (stop_tx, _) = watch::channel(false);
    let started = Instant::now();
    let (rss0, fds0, cpu0) = server
        .as_ref()
        .map_or((0, 0, f64::NAN), |s| (s.rss_kb(), s.fds(), s.cpu_s()));
    println!(
        "RESULT idle server_rss_kb={rss0} server_fds={fds0} client_rss_kb={}",
        self_rss_kb()
    );

    // Timeline, every second.
    let tl_stats = stats.clone();
    let tl_server = server.as_ref().map(|s| Proc {
        pid: s.pid,
        hz: s.hz,
    });
    let timeline = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let failed: u64 = tl_stats.failed.lock().unwrap().values().sum();
            let ended: u64 = tl_stats.ended.lock().unwrap().values().sum();
            let (rss, fds, cpu) = tl_server
                .as_ref()
                .map_or((0, 0, f64::NAN), |s| (s.rss_kb(), s.fds(), s.cpu_s()));
            println!(
                "TIMELINE t={:.0} ready={} open={} failed={} ended={} pings={} server_rss_kb={rss} server_fds={fds} server_cpu_s={cpu:.2} client_rss_kb={}",
                started.elapsed().as_secs_f64(),
                tl_stats.ready.load(Ordering::Relaxed),
                tl_stats.open_now.load(Ordering::Relaxed),
                failed,
                ended,
                tl_stats.pings.load(Ordering::Relaxed),
                self_rss_kb(),
            );
        }
    });

    // Ramp.
    let mut tasks = Vec::with_capacity(n);
    let ramp_start = tokio::time::Instant::now();
    for j in 0..n {
        tokio::time::sleep_until(ramp_start + Duration::from_secs_f64(j as f64 / rate)).await;
        let (host, token) = tokens[j % tokens.len()].clone();
        tasks.push(tokio::spawn(hold_conn(
            addr.clone(),
            host,
            token,
            read_buffer,
            stop_tx.subscribe(),
            stats.clone(),
        )));
    }
    // Every socket ready or failed (at most 60 s more).
    let settle = Instant::now();
    while (stats.ready.load(Ordering::Relaxed) + stats.failed.lock().unwrap().values().sum::<u64>())
        < n as u64
        && settle.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ramp_s = ramp_start.elapsed().as_secs_f64();
    let open_after_ramp = stats.open_now.load(Ordering::Relaxed);
    let (rss1, fds1) = server.as_ref().map_or((0, 0), |s| (s.rss_kb(), s.fds()));
    let cpu1 = server.as_ref().map_or(f64::NAN, Proc::cpu_s);
    println!(
        "RESULT ramp n={n} rate={rate} ramp_s={ramp_s:.1} ready={} open={open_after_ramp} server_rss_kb={rss1} server_fds={fds1} server_cpu_s={:.2} client_rss_kb={}",
        stats.ready.load(Ordering::Relaxed),
        cpu1 - cpu0,
        self_rss_kb()
    );

    // Hold.
    let pings0 = stats.pings.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(hold_s)).await;
    let held = stats.open_now.load(Ordering::Relaxed);
    let (rss2, fds2) = server.as_ref().map_or((0, 0), |s| (s.rss_kb(), s.fds()));
    let cpu2 = server.as_ref().map_or(f64::NAN, Proc::cpu_s);
    let pings_in_hold = stats.pings.load(Ordering::Relaxed) - pings0;

    // Close everything.
    stop_tx.send_replace(true);
    for t in tasks {
        let _ = t.await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rss3, fds3) = server.as_ref().map_or((0, 0), |s| (s.rss_kb(), s.fds()));
    timeline.abort();

    let mut hs = std::mem::take(&mut *stats.handshake_us.lock().unwrap());
    hs.sort_unstable();
    let mut ph: Vec<u64> = stats
        .pings_held
        .lock()
        .unwrap()
        .iter()
        .map(|&p| u64::from(p))
        .collect();
    ph.sort_unstable();
    let per_conn = if held > 0 {
        (rss2 as f64 - rss0 as f64) / held as f64
    } else {
        f64::NAN
    };
    println!(
        "RESULT held target={n} ready={} held_at_end={held} hold_s={hold_s} pings_in_hold={pings_in_hold} pings_per_socket_min={} pings_per_socket_median={} server_rss_kb={rss2} server_rss_per_socket_kb={per_conn:.1} server_fds={fds2} server_cpu_in_hold_s={:.2} client_rss_kb={}",
        stats.ready.load(Ordering::Relaxed),
        ph.first().copied().unwrap_or(0),
        pct(&ph, 50.0),
        cpu2 - cpu1,
        self_rss_kb()
    );
    println!(
        "RESULT handshake_ms p50={:.1} p99={:.1} max={:.1}",
        pct(&hs, 50.0) / 1000.0,
        pct(&hs, 99.0) / 1000.0,
        hs.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    println!("RESULT closed server_rss_kb={rss3} server_fds={fds3}");
    let failed = stats.failed.lock().unwrap().clone();
    let ended = stats.ended.lock().unwrap().clone();
    println!(
        "RESULT errors failed_to_open={} ended_early={} detail={:?} {:?}",
        failed.values().sum::<u64>(),
        ended.values().sum::<u64>(),
        failed,
        ended
    );
}

// ----------------------------------------------------------------------------------------------
// fanout

struct Times {
    send: Vec<AtomicU64>,
    ack: Vec<AtomicU64>,
    recv: Vec<AtomicU64>,
    dup: AtomicU64,
    foreign: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    received: AtomicU64,
}

impl Times {
    fn new(n: usize) -> Self {
        let v = || (0..n).map(|_| AtomicU64::new(0)).collect();
        Self {
            send: v(),
            ack: v(),
            recv: v(),
            dup: AtomicU64::new(0),
            foreign: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            received: AtomicU64::new(0),
        }
    }
}

/// A receiver: subscribe to `room`, then record every message of this run.
async fn receiver(
    mut ws: Ws,
    room: String,
    after: Option<i64>,
    run: String,
    times: Arc<Times>,
    ready: mpsc::Sender<()>,
) {
    let mut sub = serde_json::json!({"type": "subscribe", "consultation_id": room, "ref": "sub"});
    if let Some(after) = after {
        sub["after_seq"] = after.into();
    }
    if ws
        .send(Message::Text(sub.to_string().into()))
        .await
        .is_err()
    {
        bump(&times.errors, "receiver send failed".into());
        return;
    }
    let mut subscribed = false;
    while let Some(frame) = ws.next().await {
        let text = match frame {
            Ok(Message::Text(t)) => t,
            Ok(Message::Close(c)) => {
                bump(
                    &times.errors,
                    format!("receiver closed {}", c.map_or(0, |c| u16::from(c.code))),
                );
                return;
            }
            Ok(_) => continue,
            Err(e) => {
                bump(&times.errors, format!("receiver read error {e}"));
                return;
            }
        };
        let at = now_us();
        let v: serde_json::Value = serde_json::from_str(text.as_str()).unwrap_or_default();
        match v["type"].as_str() {
            Some("subscribed") if !subscribed => {
                subscribed = true;
                let _ = ready.send(()).await;
            }
            Some("chat.message") => {
                let body = v["message"]["body"].as_str().unwrap_or("");
                let mut f = body.split(' ');
                if f.next() != Some("wsb") || f.next() != Some(run.as_str()) {
                    if subscribed {
                        times.foreign.fetch_add(1, Ordering::Relaxed);
                    }
                    continue;
                }
                let Some(i) = f.next().and_then(|i| i.parse::<usize>().ok()) else {
                    continue;
                };
                if let Some(slot) = times.recv.get(i) {
                    if slot.swap(at, Ordering::Relaxed) != 0 {
                        times.dup.fetch_add(1, Ordering::Relaxed);
                    } else {
                        times.received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Some("error") => bump(&times.errors, format!("receiver error event {}", v["code"])),
            _ => {}
        }
    }
    bump(&times.errors, "receiver eof".into());
}

async fn fanout(a: Args) {
    let send_addr = a.s("send");
    let recv_addr = a.s("recv");
    let recv_tokens = read_tokens(&a.s("recv-tokens"));
    // "<consultation id>[ <after_seq>]" per line: the receivers subscribe from that cursor.
    let lines = read_lines(&a.s("rooms"));
    let rooms: Vec<String> = lines
        .iter()
        .map(|l| l.split_whitespace().next().unwrap_or("").to_owned())
        .collect();
    let afters: Vec<Option<i64>> = lines
        .iter()
        .map(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .collect();
    let send_tokens = read_tokens(&a.s("send-tokens"));
    let k: usize = a.n("receivers", 100);
    let s: usize = a.n("senders", 4);
    let rate: f64 = a.n("rate", 50.0);
    let count: usize = a.n("count", 1500);
    let warmup: usize = a.n("warmup", k);
    let body_bytes: usize = a.n("body-bytes", 100);
    let label = a.opt("label").unwrap_or_else(|| "fanout".into());
    if k == 0 || s == 0 || k > recv_tokens.len() || k > rooms.len() {
        die("need 0 < receivers <= lines of --recv-tokens and --rooms, senders > 0");
    }
    let total = warmup + count;
    let run = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    );
    let times = Arc::new(Times::new(total));
    now_us();

    // Receivers, subscribed before anything is sent.
    let (ready_tx, mut ready_rx) = mpsc::channel::<()>(k);
    for (j, room) in rooms.iter().take(k).enumerate() {
        let (host, token) = &recv_tokens[j];
        let ws = match open(&recv_addr, host, token, 4096).await {
            Ok(ws) => ws,
            Err(e) => die(&format!("receiver {j}: {e}")),
        };
        tokio::spawn(receiver(
            ws,
            room.clone(),
            afters[j],
            run.clone(),
            times.clone(),
            ready_tx.clone(),
        ));
    }
    for _ in 0..k {
        if tokio::time::timeout(Duration::from_secs(60), ready_rx.recv())
            .await
            .is_err()
        {
            die(&format!(
                "receivers not all subscribed within 60 s: {:?}",
                times.errors.lock().unwrap()
            ));
        }
    }

    // Senders: one writer task per socket fed by a channel, one reader for the acks.
    let mut feeds = Vec::with_capacity(s);
    for j in 0..s {
        let (host, token) = &send_tokens[j % send_tokens.len()];
        let ws = match open(&send_addr, host, token, 4096).await {
            Ok(ws) => ws,
            Err(e) => die(&format!("sender {j}: {e}")),
        };
        let (mut sink, mut stream) = ws.split();
        let (tx, mut rx) = mpsc::unbounded_channel::<(usize, String)>();
        feeds.push(tx);
        let t = times.clone();
        let run = run.clone();
        tokio::spawn(async move {
            while let Some((i, room)) = rx.recv().await {
                let at = now_us();
                let mut body = format!("wsb {run} {i} {at} ");
                while body.len() < body_bytes {
                    body.push('x');
                }
                let ev = serde_json::json!({"type": "chat.send", "consultation_id": room,
                    "body": body, "ref": i.to_string()});
                t.send[i].store(at, Ordering::Relaxed);
                if sink
                    .send(Message::Text(ev.to_string().into()))
                    .await
                    .is_err()
                {
                    bump(&t.errors, "sender write failed".into());
                    return;
                }
            }
        });
        let t = times.clone();
        tokio::spawn(async move {
            while let Some(frame) = stream.next().await {
                let text = match frame {
                    Ok(Message::Text(text)) => text,
                    Ok(Message::Close(c)) => {
                        bump(
                            &t.errors,
                            format!("sender closed {}", c.map_or(0, |c| u16::from(c.code))),
                        );
                        return;
                    }
                    Ok(_) => continue,
                    Err(e) => {
                        bump(&t.errors, format!("sender read error {e}"));
                        return;
                    }
                };
                let at = now_us();
                let v: serde_json::Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                match v["type"].as_str() {
                    Some("chat.sent") => {
                        if let Some(slot) = v["ref"]
                            .as_str()
                            .and_then(|r| r.parse::<usize>().ok())
                            .and_then(|i| t.ack.get(i))
                        {
                            slot.store(at, Ordering::Relaxed);
                        }
                    }
                    Some("error") => bump(&t.errors, format!("sender error event {}", v["code"])),
                    _ => {}
                }
            }
        });
    }

    // Paced sends.
    let start = tokio::time::Instant::now() + Duration::from_millis(200);
    let t_first = now_us() + 200_000;
    for i in 0..total {
        tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
        let _ = feeds[i % s].send((i, rooms[i % k].clone()));
    }
    let sent_at_us = now_us();
    // Wait for the stragglers (at most 15 s after the last send).
    let deadline = Instant::now() + Duration::from_secs(15);
    while times.received.load(Ordering::Relaxed) < total as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Results over the measured messages (after the warm-up).
    let mut lat = Vec::new();
    let mut ack = Vec::new();
    let mut lost = 0u64;
    let mut rows = String::from("i\troom\tsend_us\tack_us\trecv_us\n");
    for i in warmup..total {
        let sd = times.send[i].load(Ordering::Relaxed);
        let ak = times.ack[i].load(Ordering::Relaxed);
        let rv = times.recv[i].load(Ordering::Relaxed);
        rows.push_str(&format!("{i}\t{}\t{sd}\t{ak}\t{rv}\n", i % k));
        if rv == 0 || sd == 0 {
            lost += 1;
        } else {
            lat.push(rv.saturating_sub(sd));
        }
        if ak != 0 && sd != 0 {
            ack.push(ak.saturating_sub(sd));
        }
    }
    if let Some(out) = a.opt("out") {
        let _ = std::fs::write(out, rows);
    }
    lat.sort_unstable();
    ack.sort_unstable();
    let ms = |v: f64| v / 1000.0;
    let span_s = (sent_at_us.saturating_sub(t_first)) as f64 / 1e6;
    println!(
        "RESULT {label} receivers={k} senders={s} rate={rate} achieved_rate={:.1} messages={count} warmup={warmup} received={} lost={lost} duplicates={} foreign={} p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} p999_ms={:.2} max_ms={:.2} mean_ms={:.2} ack_p50_ms={:.2} ack_p99_ms={:.2} ack_max_ms={:.2} errors={:?}",
        total as f64 / span_s.max(1e-9),
        lat.len(),
        times.dup.load(Ordering::Relaxed),
        times.foreign.load(Ordering::Relaxed),
        ms(pct(&lat, 50.0)),
        ms(pct(&lat, 90.0)),
        ms(pct(&lat, 99.0)),
        ms(pct(&lat, 99.9)),
        ms(lat.last().copied().unwrap_or(0) as f64),
        ms(lat.iter().sum::<u64>() as f64 / lat.len().max(1) as f64),
        ms(pct(&ack, 50.0)),
        ms(pct(&ack, 99.0)),
        ms(ack.last().copied().unwrap_or(0) as f64),
        times.errors.lock().unwrap(),
    );
}

// ----------------------------------------------------------------------------------------------
// subscribe

/// One socket joins one room (from `--after`, or from the start) and reports what it got: the
/// backlog's messages, the `subscribed` answer, or how the server closed it.
async fn subscribe(a: Args) {
    let tokens = read_tokens(&a.s("tokens"));
    let line: usize = a.n("line", 1);
    let (host, token) = tokens
        .get(line.saturating_sub(1))
        .unwrap_or_else(|| die("--line: no such token"));
    let mut ws = open(&a.s("addr"), host, token, 4096)
        .await
        .unwrap_or_else(|e| die(&e));
    let mut sub = serde_json::json!({"type": "subscribe", "consultation_id": a.s("room")});
    if let Some(after) = a.opt("after") {
        sub["after_seq"] = after
            .parse::<i64>()
            .unwrap_or_else(|_| die("--after: not a number"))
            .into();
    }
    if ws
        .send(Message::Text(sub.to_string().into()))
        .await
        .is_err()
    {
        die("cannot send subscribe");
    }
    let (mut n, mut first, mut last) = (0u64, None, None);
    let mut outcome = String::from("no answer within 10 s");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let frame = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => break,
            Ok(f) => f,
        };
        match frame {
            Some(Ok(Message::Text(t))) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                match v["type"].as_str() {
                    Some("chat.message") => {
                        n += 1;
                        let seq = v["message"]["seq"].as_i64();
                        first = first.or(seq);
                        last = seq;
                    }
                    Some("subscribed") => {
                        outcome = format!("subscribed last_seq={}", v["last_seq"]);
                        break;
                    }
                    Some("error") => {
                        outcome = format!("error event {} ({})", v["code"], v["detail"])
                    }
                    _ => {}
                }
            }
            Some(Ok(Message::Close(c))) => {
                outcome = format!(
                    "closed by the server: {} {}",
                    c.as_ref().map_or(0, |c| u16::from(c.code)),
                    c.as_ref().map_or("", |c| c.reason.as_str())
                );
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                outcome = format!("read error {e}");
                break;
            }
            None => {
                outcome = "eof".into();
                break;
            }
        }
    }
    println!(
        "RESULT subscribe after={} backlog_messages_received={n} first_seq={} last_seq={} outcome={outcome}",
        a.opt("after").unwrap_or_else(|| "none".into()),
        first.map_or("-".into(), |s: i64| s.to_string()),
        last.map_or("-".into(), |s: i64| s.to_string()),
    );
}

// ----------------------------------------------------------------------------------------------
// server

/// A bare tokio-tungstenite server (what axum's `WebSocket` is made of) that answers like the
/// gateway's handshake (subprotocol `serein.v1`, a `ready` event) and then only reads: the
/// per-socket memory of the WebSocket layer alone, with tungstenite's default read buffer or
/// `--read-buffer`, for comparison with the server's own figure.
async fn server(a: Args) {
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    let listener = tokio::net::TcpListener::bind(a.s("addr"))
        .await
        .unwrap_or_else(|e| die(&format!("bind: {e}")));
    let mut config = WebSocketConfig::default();
    if let Some(rb) = a.opt("read-buffer") {
        config = config.read_buffer_size(
            rb.parse()
                .unwrap_or_else(|_| die("--read-buffer: not a number")),
        );
    }
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            // The callback's error type is tungstenite's (an HTTP response), not ours.
            #[allow(clippy::result_large_err)]
            let pick = |_: &Request, mut r: Response| {
                r.headers_mut()
                    .insert("sec-websocket-protocol", "serein.v1".parse().unwrap());
                Ok(r)
            };
            let Ok(mut ws) =
                tokio_tungstenite::accept_hdr_async_with_config(stream, pick, Some(config)).await
            else {
                return;
            };
            if ws
                .send(Message::Text(r#"{"type":"ready"}"#.into()))
                .await
                .is_err()
            {
                return;
            }
            while let Some(Ok(_)) = ws.next().await {}
        });
    }
}

// ----------------------------------------------------------------------------------------------
// aead

fn aead(a: Args) {
    use aes_gcm::aead::AeadInOut;
    use aes_gcm::{Aes256Gcm, KeyInit, Nonce};

    let n: usize = a.n("n", 200_000);
    let body_bytes: usize = a.n("body-bytes", 100);
    let key = [0x5au8; 32];
    let tenant = "0190c0de-0000-7000-8000-000000000001";
    let row = "0190c0de-0000-7000-8000-00000000abcd";
    let version: u32 = 1;
    let encode = || format!("v1|{tenant}|messages|body|{row}").into_bytes();
    let auth = |aad: &[u8]| {
        let mut ad = Vec::with_capacity(5 + aad.len());
        ad.push(1u8);
        ad.extend_from_slice(&version.to_be_bytes());
        ad.extend_from_slice(aad);
        ad
    };
    // Seal one body as src/crypto/sealed.rs does.
    let nonce = [0x11u8; 12];
    let plain: Vec<u8> = std::iter::repeat_n(b'x', body_bytes).collect();
    let mut blob = vec![1u8];
    blob.extend_from_slice(&version.to_be_bytes());
    blob.extend_from_slice(&nonce);
    let mut ct = plain.clone();
    let tag = Aes256Gcm::new((&key).into())
        .encrypt_inout_detached(
            &Nonce::from(nonce),
            &auth(&encode()),
            ct.as_mut_slice().into(),
        )
        .unwrap_or_else(|_| die("seal failed"));
    blob.extend_from_slice(&ct);
    blob.extend_from_slice(tag.as_slice());

    let open = |blob: &[u8], cipher: Option<&Aes256Gcm>| -> String {
        let ad = auth(&encode());
        let nonce: [u8; 12] = blob[5..17].try_into().unwrap_or([0; 12]);
        let body = &blob[17..];
        let (ct, tag) = body.split_at(body.len() - 16);
        let tag: [u8; 16] = tag.try_into().unwrap_or([0; 16]);
        let mut out = ct.to_vec();
        let owned;
        let c = match cipher {
            Some(c) => c,
            None => {
                owned = Aes256Gcm::new((&key).into());
                &owned
            }
        };
        c.decrypt_inout_detached(
            &Nonce::from(nonce),
            &ad,
            out.as_mut_slice().into(),
            &tag.into(),
        )
        .unwrap_or_else(|_| die("open failed"));
        String::from_utf8(out).unwrap_or_default()
    };
    for _ in 0..n / 10 {
        black_box(open(black_box(&blob), None));
    }
    let t = Instant::now();
    for _ in 0..n {
        black_box(open(black_box(&blob), None));
    }
    let per_open = t.elapsed().as_nanos() as f64 / n as f64;
    let cipher = Aes256Gcm::new((&key).into());
    let t = Instant::now();
    for _ in 0..n {
        black_box(open(black_box(&blob), Some(&cipher)));
    }
    let per_open_no_schedule = t.elapsed().as_nanos() as f64 / n as f64;
    println!(
        "RESULT aead body_bytes={body_bytes} blob_bytes={} n={n} ns_per_open={per_open:.0} us_per_20_opens={:.2} ns_per_open_without_key_schedule={per_open_no_schedule:.0}",
        blob.len(),
        per_open * 20.0 / 1000.0
    );
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = argv.split_first() else {
        die("usage: wsclient hold|fanout|subscribe|server|aead --key value …")
    };
    let args = Args::parse(rest);
    now_us();
    match cmd.as_str() {
        "aead" => aead(args),
        "hold" | "fanout" | "subscribe" | "server" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| die(&format!("runtime: {e}")));
            match cmd.as_str() {
                "hold" => rt.block_on(hold(args)),
                "fanout" => rt.block_on(fanout(args)),
                "server" => rt.block_on(server(args)),
                _ => rt.block_on(subscribe(args)),
            }
        }
        _ => die("usage: wsclient hold|fanout|subscribe|server|aead --key value …"),
    }
}
