//! A2A against real peers written by others: the Python `a2a-sdk` client (v1.0 and v0.3) and
//! the `@a2a-js/sdk` client talking to agents the host serves, the `delegate` agent reaching
//! local agents (by name and by skill) and a remote agent served by the Python `a2a-sdk`
//! server, and the JSON-RPC error cases.

use agenthost_tests::peers::peers_dir;
use agenthost_tests::*;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const TEAM_TOKEN: &str = "team-secret-token";
const OPS_KEY: &str = "ops-secret-key";

/// An agent manifest exposing `component` as `name` over A2A.
fn exposed(name: &str, component: &str, extra_a2a: &str, timeout: &str) -> String {
    format!(
        r#"
name = "{name}"
version = "1.0.0"
component = "{{plugins}}/{component}.wasm"

[limits]
timeout = "{timeout}"

[capabilities]
publish = ["a2a.unused.v1"]
config = {{ out = "a2a.unused.v1" }}

[a2a]
expose = true
{extra_a2a}
"#
    )
}

/// A host with `echo` and `spin` (faulty; "loop" keeps it working until canceled) exposed,
/// and `secured` / `keyed` copies of echo behind a bearer token and an API key.
fn serving_scenario(extra_config: &str) -> Scenario {
    let s = Scenario::new(&format!(
        "[a2a.security.team]\nkind = \"bearer\"\nenv = \"TEAM_TOKEN\"\n[a2a.security.ops-key]\nkind = \"api-key\"\nenv = \"OPS_KEY\"\nheader = \"X-Ops-Key\"\n{extra_config}"
    ));
    s.manifest("echo", &exposed("echo", "echo", "security = []", "10s"));
    s.manifest("spin", &exposed("spin", "faulty", "security = []", "60s"));
    s.manifest(
        "secured",
        &exposed("secured", "echo", "security = [\"team\"]", "10s"),
    );
    s.manifest(
        "keyed",
        &exposed("keyed", "echo", "security = [\"ops-key\"]", "10s"),
    );
    s
}

fn start(s: &Scenario) -> HostProcess {
    s.start_with_env(&[("TEAM_TOKEN", TEAM_TOKEN), ("OPS_KEY", OPS_KEY)])
}

/// Runs a peer script; returns its JSON lines by step.
fn run_steps(mut command: Command) -> Vec<Value> {
    let output = command.output().expect("run the peer client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "peer client failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn step<'a>(steps: &'a [Value], name: &str) -> &'a Value {
    steps
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {steps:?}"))
}

fn python_client(host: &HostProcess, echo: &str, mode: &str, bearer: Option<&str>) -> Vec<Value> {
    let mut command = Command::new("python3");
    command
        .arg(peers_dir().join("a2a_client.py"))
        .arg(format!("{}/agents/{echo}", host.url))
        .arg(format!("{}/agents/spin", host.url))
        .arg(mode);
    if let Some(token) = bearer {
        command.arg(token);
    }
    run_steps(command)
}

#[test]
fn the_python_sdk_client_speaks_v1_and_v03_to_agents_the_host_serves() {
    let s = serving_scenario("");
    let host = start(&s);
    for mode in ["1.0", "0.3"] {
        let steps = python_client(&host, "echo", mode, None);
        let card = step(&steps, "card");
        assert_eq!(card["name"], "echo");
        assert_eq!(card["skills"], json!(["echo"]));
        assert_eq!(
            card["transport"],
            if mode == "1.0" {
                "JsonRpcTransport"
            } else {
                "CompatJsonRpcTransport"
            }
        );
        let send = step(&steps, "send");
        assert_eq!(send["state"], "TASK_STATE_COMPLETED", "{mode}: {send}");
        assert_eq!(send["text"], "hello over a2a");
        let stream = step(&steps, "stream");
        assert_eq!(stream["kinds"][0], "task", "{stream}");
        assert_eq!(stream["state"], "TASK_STATE_COMPLETED");
        assert_eq!(stream["text"], "streamed");
        let get = step(&steps, "get");
        assert_eq!(get["state"], "TASK_STATE_COMPLETED");
        assert_eq!(
            get["history"], 1,
            "historyLength = 1 keeps the last message"
        );
        let list = step(&steps, "list");
        if mode == "1.0" {
            assert_eq!(list["count"], 1, "{list}");
            assert!(list["total"].as_u64().unwrap() >= 2);
            assert_eq!(list["next"], true);
        } else {
            // The SDK's v0.3 transport has no ListTasks; the host's tasks/list is tested below.
            assert_eq!(list["unsupported"], true);
        }
        assert_eq!(step(&steps, "unknown-task")["raised"], "TaskNotFoundError");
        let cancel = step(&steps, "cancel");
        assert_eq!(cancel["after"], "TASK_STATE_CANCELED", "{cancel}");
        assert_eq!(
            step(&steps, "cancel-again")["raised"],
            "TaskNotCancelableError"
        );
    }
    // The card's bearer scheme is one the SDK understands: it sends the token by itself.
    let steps = python_client(&host, "secured", "1.0", Some(TEAM_TOKEN));
    assert_eq!(step(&steps, "send")["state"], "TASK_STATE_COMPLETED");
}

#[test]
fn the_javascript_sdk_client_speaks_to_agents_the_host_serves() {
    let s = serving_scenario("");
    let host = start(&s);
    for mode in ["1.0", "0.3"] {
        let mut command = Command::new("node");
        command
            .current_dir(peers_dir())
            .arg("a2a_client.mjs")
            .arg(format!("{}/agents/echo", host.url))
            .arg(format!("{}/agents/spin", host.url))
            .arg(mode);
        let steps = run_steps(command);
        assert_eq!(step(&steps, "card")["name"], "echo");
        let send = step(&steps, "send");
        assert_eq!(send["state"], "TASK_STATE_COMPLETED", "{mode}: {send}");
        assert_eq!(send["text"], "hello from js");
        let stream = step(&steps, "stream");
        assert_eq!(stream["state"], "TASK_STATE_COMPLETED", "{stream}");
        assert_eq!(stream["text"], "streamed from js");
        assert_eq!(step(&steps, "get")["history"], 1);
        if mode == "1.0" {
            assert_eq!(step(&steps, "list")["count"], 1);
        }
        assert_eq!(step(&steps, "cancel")["after"], "TASK_STATE_CANCELED");
    }
}

fn rpc(host: &HostProcess, agent: &str, version: Option<&str>, body: &str) -> (u16, Value) {
    let mut request = http()
        .post(format!("{}/agents/{agent}", host.url))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(v) = version {
        request = request.header("A2A-Version", v);
    }
    let response = request.send().expect("A2A request");
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

#[test]
fn malformed_requests_and_missing_credentials_are_answered_correctly() {
    let s = serving_scenario("");
    let host = start(&s);
    let v1 = Some("1.0");
    let code = |(_, body): (u16, Value)| body["error"]["code"].as_i64().unwrap_or(0);

    assert_eq!(code(rpc(&host, "echo", v1, "{not json")), -32700);
    assert_eq!(
        code(rpc(
            &host,
            "echo",
            v1,
            r#"[{"jsonrpc":"2.0","id":1,"method":"GetTask"}]"#
        )),
        -32600
    );
    assert_eq!(
        code(rpc(
            &host,
            "echo",
            v1,
            r#"{"jsonrpc":"1.0","id":1,"method":"GetTask"}"#
        )),
        -32600
    );
    let (status, unknown) = rpc(
        &host,
        "echo",
        v1,
        r#"{"jsonrpc":"2.0","id":7,"method":"Nope"}"#,
    );
    assert_eq!(status, 200, "JSON-RPC errors travel with HTTP 200");
    assert_eq!(unknown["error"]["code"], -32601);
    assert_eq!(unknown["id"], 7, "the id is echoed");
    let (_, bad) = rpc(
        &host,
        "echo",
        v1,
        r#"{"jsonrpc":"2.0","id":"b","method":"SendMessage","params":{"message":{"messageId":"m","role":"ROLE_USER","parts":[]}}}"#,
    );
    assert_eq!(bad["error"]["code"], -32602);
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap()
            .contains("params.message.parts"),
        "{bad}"
    );
    assert_eq!(
        code(rpc(
            &host,
            "echo",
            v1,
            r#"{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":5}}"#
        )),
        -32602
    );
    let (_, missing) = rpc(
        &host,
        "echo",
        v1,
        r#"{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"nope"}}"#,
    );
    assert_eq!(missing["error"]["code"], -32001);
    assert_eq!(missing["error"]["data"][0]["reason"], "TASK_NOT_FOUND");
    // v0.3 shapes: no ErrorInfo, and tasks/list served although v0.3 clients rarely send it.
    let (_, missing03) = rpc(
        &host,
        "echo",
        None,
        r#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"id":"nope"}}"#,
    );
    assert_eq!(missing03["error"]["code"], -32001);
    assert_eq!(missing03["error"]["data"], Value::Null);
    assert_eq!(
        code(rpc(
            &host,
            "echo",
            Some("2.0"),
            r#"{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"x"}}"#
        )),
        -32009
    );
    let (_, sent) = rpc(
        &host,
        "echo",
        None,
        r#"{"jsonrpc":"2.0","id":"s","method":"message/send","params":{"message":{"kind":"message","messageId":"m","role":"user","parts":[{"kind":"text","text":"v03"}]}}}"#,
    );
    assert_eq!(sent["result"]["kind"], "task", "{sent}");
    assert_eq!(sent["result"]["status"]["state"], "completed");
    // A message for that task naming another context is refused, not moved into it.
    let task_id = sent["result"]["id"].as_str().unwrap();
    let (_, mismatched) = rpc(
        &host,
        "echo",
        v1,
        &json!({"jsonrpc": "2.0", "id": 2, "method": "SendMessage", "params": {"message": {
            "messageId": "m2", "role": "ROLE_USER", "taskId": task_id, "contextId": "another",
            "parts": [{"text": "again"}]}}})
        .to_string(),
    );
    assert_eq!(mismatched["error"]["code"], -32602, "{mismatched}");
    assert!(
        mismatched["error"]["message"]
            .as_str()
            .unwrap()
            .contains("contextId \"another\" is not the context of task"),
        "{mismatched}"
    );
    let (_, listed) = rpc(
        &host,
        "echo",
        None,
        r#"{"jsonrpc":"2.0","id":1,"method":"tasks/list","params":{}}"#,
    );
    assert!(!listed["result"]["tasks"].as_array().unwrap().is_empty());
    assert_eq!(listed["result"]["tasks"][0]["kind"], "task");
    // Not exposed (or not there): 404.
    assert_eq!(rpc(&host, "nobody", v1, "{}").0, 404);

    // Credentials: missing or wrong → 401 with a challenge, right → served.
    let send = r#"{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"messageId":"m","role":"ROLE_USER","parts":[{"text":"hi"}]}}}"#;
    let unauthorized = http()
        .post(format!("{}/agents/secured", host.url))
        .header("A2A-Version", "1.0")
        .body(send)
        .send()
        .unwrap();
    assert_eq!(unauthorized.status().as_u16(), 401);
    assert!(
        unauthorized.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    // Credentials are checked before the body is read: an anonymous request announcing a
    // 64 MiB body is answered 401 at once, without the host waiting for (or buffering) it.
    {
        use std::io::{Read, Write};
        let address = host.url.trim_start_matches("http://");
        let mut socket = std::net::TcpStream::connect(address).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            socket,
            "POST /agents/secured HTTP/1.1\r\nHost: {address}\r\nA2A-Version: 1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{{\"jsonrpc\"",
            64 << 20
        )
        .unwrap();
        let mut head = [0u8; 12];
        socket
            .read_exact(&mut head)
            .expect("an answer before the body was sent");
        assert_eq!(&head, b"HTTP/1.1 401");
    }
    for (agent, header, value, expected) in [
        ("secured", "authorization", "Bearer wrong", 401),
        (
            "secured",
            "authorization",
            &format!("Bearer {TEAM_TOKEN}") as &str,
            200,
        ),
        ("keyed", "x-ops-key", "wrong", 401),
        ("keyed", "x-ops-key", OPS_KEY, 200),
        (
            "keyed",
            "authorization",
            &format!("Bearer {TEAM_TOKEN}") as &str,
            401,
        ),
    ] {
        let response = http()
            .post(format!("{}/agents/{agent}", host.url))
            .header("A2A-Version", "1.0")
            .header(header, value)
            .body(send)
            .send()
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            expected,
            "{agent} with {header}: {value}"
        );
    }
    // The card declares the scheme, in both versions' spellings.
    let card: Value = http()
        .get(format!(
            "{}/agents/keyed/.well-known/agent-card.json",
            host.url
        ))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        card["securitySchemes"]["ops-key"]["apiKeySecurityScheme"]["name"],
        "x-ops-key"
    );
    assert_eq!(card["security"][0]["ops-key"], json!([]));
    // As read by a2a.proto's AgentCard (the a2a-sdk's protobuf types), which admits no field
    // it does not define: the card a request without a version gets carries the 0.3 fields;
    // a 1.0 client (header or query parameter) gets one that parses.
    assert!(!parses_as_a_1_0_agent_card(&card), "{card}");
    let card_url = format!("{}/agents/keyed/.well-known/agent-card.json", host.url);
    for request in [
        http().get(&card_url).header("A2A-Version", "1.0"),
        http().get(format!("{card_url}?A2A-Version=1.0")),
    ] {
        let response = request.send().unwrap();
        assert_eq!(response.headers()["vary"], "A2A-Version");
        let card: Value = response.json().unwrap();
        for legacy in ["url", "preferredTransport", "protocolVersion", "security"] {
            assert!(card.get(legacy).is_none(), "{legacy} in {card}");
        }
        assert!(
            card["securitySchemes"]["ops-key"].get("type").is_none(),
            "{card}"
        );
        assert_eq!(
            card["securitySchemes"]["ops-key"]["apiKeySecurityScheme"]["name"],
            "x-ops-key"
        );
        assert!(parses_as_a_1_0_agent_card(&card), "{card}");
    }
    let index: Value = http()
        .get(format!("{}/agents", host.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(index["agents"].as_array().unwrap().len(), 4);

    // Refusals are audited, and the host is unharmed.
    let out = s.cli(&["audit", "--format", "json", "--denied"]);
    let denied = String::from_utf8_lossy(&out.stdout);
    assert!(
        denied.contains("\"a2a.serve\"") && denied.contains("\"secured\""),
        "{denied}"
    );
    let out = s.cli(&["send", "echo", "still here"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("still here"));
}

/// A task waiting for input can be followed (A2A 1.0 §3.1.6): the subscriber gets the task as
/// it is, then the run that a message continuing it starts, until that run ends; a finished
/// task cannot be subscribed to (-32004).
#[test]
fn an_interrupted_task_is_followed_through_its_continuation() {
    use std::io::BufRead as _;
    let s = serving_scenario("");
    let host = start(&s);
    let send = |body: Value| rpc(&host, "spin", Some("1.0"), &body.to_string()).1;
    let asked = send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {
        "message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "ask"}]}}}),
    );
    let task = &asked["result"]["task"];
    assert_eq!(
        task["status"]["state"], "TASK_STATE_INPUT_REQUIRED",
        "{asked}"
    );
    let id = task["id"].as_str().unwrap().to_owned();

    // Follow it: each SSE `data:` line, in order, until the server ends the stream.
    let subscribe = json!({"jsonrpc": "2.0", "id": 2, "method": "SubscribeToTask",
        "params": {"id": id}})
    .to_string();
    let response = http()
        .post(format!("{}/agents/spin", host.url))
        .header("A2A-Version", "1.0")
        .header("content-type", "application/json")
        .body(subscribe.clone())
        .send()
        .unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(response).lines() {
            let Ok(line) = line else { break };
            if let Some(data) = line.strip_prefix("data:") {
                let event: Value = serde_json::from_str(data.trim()).unwrap();
                if lines.send(event).is_err() {
                    break;
                }
            }
        }
    });
    let snapshot = received.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        snapshot["result"]["task"]["status"]["state"], "TASK_STATE_INPUT_REQUIRED",
        "{snapshot}"
    );

    // The subscription is in place (its snapshot came after it): continue the task.
    let continued = send(
        json!({"jsonrpc": "2.0", "id": 3, "method": "SendMessage", "params": {
        "message": {"messageId": "m2", "role": "ROLE_USER", "taskId": id,
            "parts": [{"text": "go on"}]}}}),
    );
    assert_eq!(
        continued["result"]["task"]["status"]["state"], "TASK_STATE_COMPLETED",
        "{continued}"
    );
    reader.join().unwrap();
    let followed: Vec<Value> = received.try_iter().collect();
    let last = followed.last().expect("events after the snapshot");
    assert_eq!(
        last["result"]["statusUpdate"]["status"]["state"], "TASK_STATE_COMPLETED",
        "{followed:?}"
    );
    assert!(
        last.to_string().contains("go on"),
        "the continuation's answer: {followed:?}"
    );

    // Finished now: subscribing is refused.
    let (_, refused) = rpc(&host, "spin", Some("1.0"), &subscribe);
    assert_eq!(refused["error"]["code"], -32004, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("a finished task cannot be subscribed to"),
        "{refused}"
    );
}

#[test]
fn agenthost_send_prints_the_answer_and_the_final_state() {
    let s = serving_scenario("");
    let _host = start(&s);
    let out = s.cli(&["send", "echo", "plain"]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("plain") && text.contains("[completed] task "),
        "{text}"
    );

    let out = s.cli(&["send", "echo", "as a stream", "--stream"]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("[submitted]") && text.contains("[working]"),
        "{text}"
    );
    assert!(
        text.contains("as a stream") && text.contains("[completed]"),
        "{text}"
    );

    // A task that failed: its state and reason, exit 1.
    let out = s.cli(&["send", "spin", "trap"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("failed") && stderr.contains("trap"),
        "{stderr}"
    );

    // Credentials from the command line.
    let out = s.cli(&["send", "secured", "hi"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    let out = s.cli(&["send", "secured", "hi", "--bearer", TEAM_TOKEN]);
    assert!(out.status.success(), "{}", describe(&out));
    let out = s.cli(&[
        "send",
        "keyed",
        "hi",
        "--header",
        &format!("X-Ops-Key={OPS_KEY}"),
    ]);
    assert!(out.status.success(), "{}", describe(&out));
}

#[test]
fn tasks_persist_across_a_restart() {
    let s = serving_scenario("");
    let mut host = start(&s);
    let (_, sent) = rpc(
        &host,
        "echo",
        Some("1.0"),
        r#"{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"messageId":"m","role":"ROLE_USER","parts":[{"text":"remember me"}]}}}"#,
    );
    let id = sent["result"]["task"]["id"].as_str().unwrap().to_owned();
    assert_eq!(host.terminate().code(), Some(0));
    let host = start(&s);
    let (_, got) = rpc(
        &host,
        "echo",
        Some("1.0"),
        &json!({"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": {"id": id}}).to_string(),
    );
    assert_eq!(
        got["result"]["status"]["state"], "TASK_STATE_COMPLETED",
        "{got}"
    );
    assert_eq!(
        got["result"]["history"][0]["parts"][0]["text"],
        "remember me"
    );
}

/// The Python a2a-sdk server, killed when dropped.
struct PythonAgent {
    child: Child,
    url: String,
}

impl PythonAgent {
    fn start(skill: &str) -> Self {
        let port = free_port();
        let child = Command::new("python3")
            .arg(peers_dir().join("a2a_echo_server.py"))
            .arg(port.to_string())
            .arg(skill)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the a2a-sdk server");
        let url = format!("http://127.0.0.1:{port}");
        let card = format!("{url}/.well-known/agent-card.json");
        let started = std::time::Instant::now();
        while !http()
            .get(&card)
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "a2a-sdk server did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { child, url }
    }
}

impl Drop for PythonAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn delegate_reaches_local_agents_by_name_and_skill_and_a_remote_python_agent() {
    let remote = PythonAgent::start("remote-echo");
    let s = serving_scenario(&format!("[[a2a.peers]]\nurl = \"{}\"\n", remote.url));
    s.manifest(
        "delegate",
        &delegate(&format!(
            r#""echo", "faulty", "remote-echo", "{}/""#,
            remote.url
        )),
    );
    let host = start(&s);
    let ask = |key: &str, peer: &str, text: &str| {
        publish(
            &host.url,
            "delegate.in.v1",
            Some(key),
            &json!({"peer": peer, "text": text}).to_string(),
            None,
        )
        .unwrap()
    };
    ask("by-name", "echo", "to echo by name");
    // `faulty` is the skill the `spin` agent advertises.
    ask("by-skill", "faulty", "to spin by skill");
    ask("by-url", &remote.url, "to python by url");
    ask("by-remote-skill", "remote-echo", "to python by skill");
    let denied_cid = ask("denied", "secured", "not granted");

    let out = consume(&host.url, "delegate.out.v1", 4, Duration::from_secs(60));
    assert_eq!(out.len(), 4, "{out:?}\nlog:\n{}", host.log_text());
    let answer = |key: &str| {
        let record = out
            .iter()
            .find(|r| r.key.as_deref() == Some(key))
            .unwrap_or_else(|| panic!("no answer for {key}: {out:?}"));
        assert_eq!(record.headers["task-state"], "completed");
        record.payload.clone().unwrap_or_default()
    };
    assert_eq!(answer("by-name"), "to echo by name");
    assert_eq!(answer("by-skill"), "to spin by skill");
    assert_eq!(answer("by-url"), "echo: to python by url");
    assert_eq!(answer("by-remote-skill"), "echo: to python by skill");

    let dead = consume(
        &host.url,
        "agent.dead-letter.delegate.v1",
        1,
        Duration::from_secs(30),
    );
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].headers["correlation-id"], denied_cid);
    assert_eq!(
        dead[0].headers["agenthost-attempts"], "1",
        "a denial is not retried"
    );
    assert!(
        dead[0].headers["agenthost-error"].contains("may not send to \"secured\""),
        "{:?}",
        dead[0].headers
    );
    let out = s.cli(&["audit", "--format", "json", "--agent", "delegate"]);
    let audit = String::from_utf8_lossy(&out.stdout);
    let entries: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let a2a: Vec<&Value> = entries
        .iter()
        .filter(|e| e["capability"] == "a2a.send-message")
        .collect();
    assert!(
        a2a.iter()
            .any(|e| e["target"] == "secured" && e["outcome"] == "denied"),
        "{a2a:?}"
    );
    assert!(
        a2a.iter()
            .any(|e| e["target"] == "remote-echo" && e["outcome"] == "allowed")
    );
    // Local delegation leaves a task on the callee, but it is the calling agent's: a client of
    // the callee (anonymous here) does not see it.
    let (_, tasks) = rpc(
        &host,
        "echo",
        Some("1.0"),
        r#"{"jsonrpc":"2.0","id":1,"method":"ListTasks","params":{}}"#,
    );
    assert!(
        tasks["result"]["tasks"].as_array().unwrap().is_empty(),
        "{tasks}"
    );
}

/// A worker serving the `faulty` skill over the bus ("slow:…" answers after 20 ms).
const BUS_WORKER: &str = r#"
name = "worker"
version = "1.0.0"
component = "{plugins}/faulty.wasm"

[delivery]
concurrency = 4

[capabilities]
publish = ["a2a.unused.v1"]
config = { out = "a2a.unused.v1" }

[a2a]
bus_skills = ["faulty"]
"#;

/// The orchestrator: `delegate` sending each job to the `faulty` skill, which its host
/// reaches over the bus.
const ORCHESTRATOR: &str = r#"
name = "delegate"
version = "1.0.0"
component = "{plugins}/delegate.wasm"

[[subscribe]]
topic = "jobs.in.v1"

[delivery]
concurrency = 8
max_attempts = 5
backoff = "200ms"

[limits]
timeout = "90s"

[capabilities]
publish = ["jobs.out.v1"]
config = { out = "jobs.out.v1" }
a2a = ["faulty"]
"#;

#[test]
fn orchestrator_and_two_workers_over_kafka_answer_every_task_once_through_a_worker_crash() {
    let bus = TestBus::kafka();
    let w1 = Scenario::on(&bus);
    let w2 = Scenario::on(&bus);
    w1.manifest("worker", BUS_WORKER);
    w2.manifest("worker", BUS_WORKER);
    let orchestrator = Scenario::new(&format!(
        "{}\n[a2a]\nbus_skills = [\"faulty\"]\ntimeout = \"40s\"\n",
        bus.config()
    ));
    orchestrator.manifest("delegate", ORCHESTRATOR);
    let mut worker1 = w1.start();
    let worker2 = w2.start();
    let host = orchestrator.start();

    // The card advertises the bus binding.
    let card: Value = http()
        .get(format!("{}/agents", worker1.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        card["agents"].as_array().unwrap().len(),
        0,
        "bus workers need not be exposed"
    );

    let jobs = 60;
    let url = host.url.clone();
    let publisher = std::thread::spawn(move || {
        for i in 0..jobs {
            let job = json!({"peer": "faulty", "text": format!("slow:job-{i:03}")});
            publish(
                &url,
                "jobs.in.v1",
                Some(&format!("job-{i}")),
                &job.to_string(),
                None,
            )
            .unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    // Both workers take part before one of them dies mid-stream.
    let started = "agenthost_a2a_tasks_total{agent=\"worker\",state=\"started\"}";
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while metric_value(&worker1.metrics(), started) < 3.0
        || metric_value(&worker2.metrics(), started) < 3.0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "both workers should get tasks: w1 {} w2 {}\nw2 log:\n{}",
            metric_value(&worker1.metrics(), started),
            metric_value(&worker2.metrics(), started),
            worker2.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    worker1.kill9();
    // A crashed worker is restarted by its supervisor; its join is what makes tansu 0.6 hand
    // the dead member's partitions out again (it does not expire members by session timeout,
    // as Apache Kafka does — see docs/kafka.md). The requests worker 1 held uncommitted are
    // delivered again to the live workers.
    let w3 = Scenario::on(&bus);
    w3.manifest("worker", BUS_WORKER);
    let worker3 = w3.start();
    publisher.join().unwrap();

    let out = consume(&host.url, "jobs.out.v1", jobs, Duration::from_secs(150));
    let mut answers: Vec<String> = out.iter().filter_map(|r| r.payload.clone()).collect();
    answers.sort();
    let expected: Vec<String> = (0..jobs).map(|i| format!("slow:job-{i:03}")).collect();
    assert_eq!(
        answers,
        expected,
        "every job answered exactly once\nworker 2 log:\n{}",
        worker2.log_text()
    );
    assert!(out.iter().all(|r| r.headers["task-state"] == "completed"));
    assert!(
        metric_value(&worker2.metrics(), started) + metric_value(&worker3.metrics(), started)
            >= 1.0
    );
    // The requests and results went through the bus.
    let requests = consume(
        &host.url,
        "agent.task-requests.faulty",
        jobs,
        Duration::from_secs(20),
    );
    assert!(requests.len() >= jobs, "{} requests", requests.len());
    let request = &requests[0];
    assert!(request.headers.contains_key("a2a-request-id"));
    assert_eq!(request.headers["a2a-reply-to"], "agent.task-results.faulty");
    let params: Value = serde_json::from_str(request.payload.as_deref().unwrap()).unwrap();
    assert_eq!(params["message"]["role"], "ROLE_USER");
}

/// A delegate granted `grant`, answering each `{"peer", "text"}` on `delegate.in.v1`.
fn delegate(grant: &str) -> String {
    format!(
        r#"
name = "delegate"
version = "1.0.0"
component = "{{plugins}}/delegate.wasm"

[[subscribe]]
topic = "delegate.in.v1"

[delivery]
max_attempts = 2
backoff = "100ms"

[capabilities]
publish = ["delegate.out.v1"]
config = {{ out = "delegate.out.v1" }}
a2a = [{grant}]
"#
    )
}

/// Which agents handled the A2A messages of one request.
fn handled_by(s: &Scenario, correlation_id: &str) -> Vec<String> {
    s.audit(&["--correlation-id", correlation_id])
        .into_iter()
        .filter(|e| e["capability"] == "a2a.message")
        .map(|e| e["agent"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A skill belongs to the first agent deployed with it: an agent advertising it later — even
/// one whose name sorts first, and across a restart, which deploys in name order — is not
/// reached by the bare skill id, only by name or as `agent/skill`. And no agent may join
/// another agent's consumer group.
#[test]
fn a_bare_skill_reaches_its_owner_and_groups_are_their_agents_own() {
    let s = Scenario::new("");
    s.manifest("spin", &exposed("spin", "faulty", "security = []", "10s"));
    s.manifest("delegate", &delegate(r#""faulty", "aaa-spin/faulty""#));
    let mut host = s.start();
    // The same component under a name that sorts first, deployed after `spin`.
    let incoming = s.path().join("incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    let squatter = incoming.join("aaa-spin.toml");
    std::fs::write(
        &squatter,
        exposed("aaa-spin", "faulty", "security = []", "10s").replace(
            "{plugins}",
            &target_dir().join("plugins").display().to_string(),
        ),
    )
    .unwrap();
    let deployed = s.cli(&["deploy", squatter.to_str().unwrap()]);
    assert!(deployed.status.success(), "{}", describe(&deployed));

    let ask = |host: &HostProcess, key: &str, peer: &str| {
        publish(
            &host.url,
            "delegate.in.v1",
            Some(key),
            &json!({"peer": peer, "text": "who answers?"}).to_string(),
            Some(&format!("cid-{key}")),
        )
        .unwrap();
    };
    ask(&host, "bare", "faulty");
    ask(&host, "pinned", "aaa-spin/faulty");
    let out = consume(&host.url, "delegate.out.v1", 2, Duration::from_secs(60));
    assert_eq!(out.len(), 2, "log:\n{}", host.log_text());
    assert_eq!(handled_by(&s, "cid-bare"), ["spin"]);
    assert_eq!(handled_by(&s, "cid-pinned"), ["aaa-spin"]);

    host.terminate();
    drop(host);
    let host = s.start();
    ask(&host, "after-restart", "faulty");
    let out = consume(&host.url, "delegate.out.v1", 3, Duration::from_secs(60));
    assert_eq!(out.len(), 3, "log:\n{}", host.log_text());
    assert_eq!(handled_by(&s, "cid-after-restart"), ["spin"]);

    // Joining spin's group (its name) to read its records is refused.
    let joiner = incoming.join("joiner.toml");
    std::fs::write(
        &joiner,
        format!(
            "name = \"joiner\"\nversion = \"1.0.0\"\ncomponent = \"{}\"\n[[subscribe]]\ntopic = \"spin.in.v1\"\ngroup = \"spin\"\n[capabilities]\npublish = [\"x.v1\"]\n",
            plugin("echo").display()
        ),
    )
    .unwrap();
    let refused = s.cli(&["deploy", joiner.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("agent \"spin\"'s own group"),
        "{}",
        describe(&refused)
    );
}

/// Tasks belong to whoever created them: a client authenticated by another scheme, an
/// anonymous client and another agent neither read, list, continue nor cancel them. And an
/// exposed agent must say who may call it.
#[test]
fn a_task_is_seen_only_by_its_creator() {
    let s = serving_scenario("");
    s.manifest(
        "shared",
        &exposed(
            "shared",
            "echo",
            "security = [\"team\", \"ops-key\"]",
            "10s",
        ),
    );
    let host = start(&s);
    let call = |credential: (&str, &str), body: Value| -> Value {
        http()
            .post(format!("{}/agents/shared", host.url))
            .header("A2A-Version", "1.0")
            .header(credential.0, credential.1)
            .json(&body)
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let team_bearer = format!("Bearer {TEAM_TOKEN}");
    let team = ("authorization", team_bearer.as_str());
    let ops = ("x-ops-key", OPS_KEY);
    let sent = call(
        team,
        json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": {
            "messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "mine"}]}}}),
    );
    let id = sent["result"]["task"]["id"].as_str().unwrap().to_owned();
    let get = json!({"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": {"id": id}});
    assert_eq!(call(team, get.clone())["result"]["id"], id.as_str());
    // The other scheme's client: not found, whatever it tries.
    assert_eq!(call(ops, get)["error"]["code"], -32001);
    let cancel = json!({"jsonrpc": "2.0", "id": 3, "method": "CancelTask", "params": {"id": id}});
    assert_eq!(call(ops, cancel)["error"]["code"], -32001);
    let continued = call(
        ops,
        json!({"jsonrpc": "2.0", "id": 4, "method": "SendMessage", "params": {"message": {
            "messageId": "m2", "role": "ROLE_USER", "taskId": id, "parts": [{"text": "theirs"}]}}}),
    );
    assert_eq!(continued["error"]["code"], -32001, "{continued}");
    let list = json!({"jsonrpc": "2.0", "id": 5, "method": "ListTasks", "params": {}});
    assert_eq!(
        call(team, list.clone())["result"]["tasks"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(
        call(ops, list)["result"]["tasks"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // An exposed agent that does not say who may call it is refused.
    let open = s.path().join("open.toml");
    std::fs::write(
        &open,
        exposed("open", "echo", "", "10s").replace(
            "{plugins}",
            &target_dir().join("plugins").display().to_string(),
        ),
    )
    .unwrap();
    let refused = s.cli(&["deploy", open.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("security = []"),
        "{}",
        describe(&refused)
    );
}

/// Whether `card` parses as a2a.proto's `AgentCard` (normative in A2A 1.0) in the a2a-sdk's
/// protobuf types, with unknown fields refused.
fn parses_as_a_1_0_agent_card(card: &Value) -> bool {
    use std::io::Write as _;
    let mut child = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys\nfrom google.protobuf import json_format\nfrom a2a.types import AgentCard\njson_format.Parse(sys.stdin.read(), AgentCard())",
        ])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(card.to_string().as_bytes())
        .expect("write the card");
    child.wait().expect("wait for python3").success()
}
