//! A headless browser (Debian's `chromium`) opens the user WebSocket stream from a page, with its
//! JWT in `Sec-WebSocket-Protocol` (the form browsers can use), and receives a message: on it, the
//! page sends a `typing` message, which another user's socket receives. Skipped, with a note,
//! when no `chromium` is installed (`apt-get install chromium`; `tests/browser/ws_smoke.sh` runs
//! this test alone).

use std::process::{Command, Stdio};
use std::time::Duration;

use ama_tests::fixtures::{create_thread, put_users, ALICE, BOB};
use ama_tests::stack::Stack;
use ama_tests::ws::open;
use serde_json::{json, Value};

fn chromium() -> Option<String> {
    let from_env = std::env::var("AMA_CHROMIUM").ok();
    from_env
        .into_iter()
        .chain(["chromium", "chromium-browser", "google-chrome"].map(String::from))
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// Kills the browser when the test ends, however it ends.
struct Browser(std::process::Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn ws_sockets(s: &Stack) -> u64 {
    let r = s.client.get("/metrics", None).await;
    String::from_utf8_lossy(&r.body)
        .lines()
        .find_map(|l| l.strip_prefix("ama_shim_ws_sockets "))
        .map_or(0, |v| v.trim().parse().unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_receives_a_message_on_the_user_stream() {
    let Some(chromium) = chromium() else {
        eprintln!("SKIPPED: no chromium found (apt-get install chromium, or set AMA_CHROMIUM)");
        return;
    };
    let s = Stack::start(&[]);
    put_users(&s, &[(ALICE, "basic"), (BOB, "basic")]).await;
    let (alice, bob) = (s.jwt(ALICE), s.jwt(BOB));
    let tid = create_thread(&s, &alice, &[BOB]).await;
    let auth = format!("Bearer {bob}");
    let mut b = open(
        &s.client,
        "/api/v1/chat/ws/user/threads",
        &[("authorization", &auth)],
    )
    .await
    .socket();
    b.until(Duration::from_secs(10), |v| v["type"] == "ready")
        .await;

    let dir = s.cluster.dir.join("browser");
    std::fs::create_dir_all(&dir).expect("dir");
    let page = dir.join("ws.html");
    let html = format!(
        r#"<!doctype html><meta charset="utf-8"><title>ws smoke</title><script>
const ws = new WebSocket("wss://localhost:{port}/api/v1/chat/ws/user/threads", ["ama.v1", "bearer.{alice}"]);
ws.onmessage = (e) => {{
  const m = JSON.parse(e.data);
  if (m.type === "thread_message" && m.event.content === "hello, browser") {{
    ws.send(JSON.stringify({{type: "typing", thread_id: m.thread_id, status: "started"}}));
  }}
}};
</script>"#,
        port = s.port
    );
    std::fs::write(&page, html).expect("page");
    let _browser = Browser(
        Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--ignore-certificate-errors",
                &format!("--user-data-dir={}", dir.join("profile").display()),
                &format!("file://{}", page.display()),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium"),
    );
    // the browser's socket is open when the shim counts two
    let mut open_sockets = 0;
    for _ in 0..150 {
        open_sockets = ws_sockets(&s).await;
        if open_sockets >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(open_sockets, 2, "the browser's WebSocket did not open");
    let r = s
        .client
        .json(
            "POST",
            &format!("/api/v1/chat/threads/{tid}/messages"),
            Some(&bob),
            &json!({"content": "hello, browser"}),
        )
        .await;
    assert_eq!(r.status, 200);
    // the page answers the message it received with a typing notice
    let (typing, _) = b
        .until(Duration::from_secs(20), |v: &Value| {
            v["type"] == "thread_typing"
        })
        .await;
    assert_eq!(typing["sender_id"], format!("user:{ALICE}"));
    assert_eq!(typing["thread_id"], tid.as_str());
    assert!(!s.logs().contains(&alice), "the JWT reached the log");
}
