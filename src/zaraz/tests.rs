//! Native integration tests: the sync driven through `NativeOutbound` against the Node fake of the
//! Cloudflare Zaraz API (tests/fakes/cloudflare-api.mjs, one process per test, killed on drop) and
//! a real store (`LocalStore`). Each scenario seeds the fake so that exactly three catalog events
//! (ViewContent, AddToCart, Purchase) lack a trigger; the fake's initial config holds a secret
//! variable (`capiToken01`) whose value only `/__control/config` shows.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};

use serde_json::{json, Value};

use super::apply::Tuning;
use super::*;
use crate::events::catalog::STANDARD_EVENTS;
use crate::http::native::NativeOutbound;
use crate::testsupport::LocalStore;
use crate::upstash::Isolate;

const TOKEN: &str = "cf-test-token-0123456789";
const ZONE: &str = "0123456789abcdef0123456789abcdef";
const MISSING: [&str; 3] = ["ViewContent", "AddToCart", "Purchase"];
const SECRET_VALUE: &str = "EAAGfakeCapiToken0001";
const TEST_TRIGGER: &str = "Test trigger (debug)";

struct Fake {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    url: String,
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Fake {
    fn start(policy: &str, drop_secrets: bool) -> Fake {
        let mut cmd = Command::new("node");
        cmd.arg(format!("{}/tests/fakes/cloudflare-api.mjs", env!("CARGO_MANIFEST_DIR")));
        cmd.args(["--port", "0", "--token", TOKEN, "--zone", ZONE, "--version-policy", policy]);
        if drop_secrets {
            cmd.arg("--drop-secrets-without-value");
        }
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("node on PATH");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("fake banner");
        // `cloudflare-fake listening on http://127.0.0.1:PORT`
        let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap_or_else(|| panic!("no URL in banner {line:?}")).to_string();
        Fake { child, _stdout: stdout, url }
    }

    fn control(&self, method: &str, name: &str, body: Option<Value>) -> Value {
        let req = ureq::request(method, &format!("{}/__control/{name}", self.url));
        let resp = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        resp.expect("control call").into_json().expect("control json")
    }

    fn config(&self) -> Value {
        self.control("GET", "config", None)
    }

    fn fault(&self, f: Value) {
        self.control("POST", "fault", Some(f));
    }

    fn put_requests(&self) -> Vec<Value> {
        let all = self.control("GET", "requests", None);
        all.as_array().unwrap().iter().filter(|r| r["method"] == "PUT" && r["path"].as_str().unwrap().ends_with("/config")).cloned().collect()
    }

    /// Every catalog event but three gets a trigger, plus a leftover debug trigger a tool fires on.
    fn seed(&self) -> Value {
        let mut c = self.config();
        for e in STANDARD_EVENTS.iter().filter(|e| !MISSING.contains(e) && **e != "Lead") {
            c["triggers"][format!("pre{e}")] = json!({
                "name": e, "description": "set up by hand", "excludeRules": [], "clientRules": [],
                "loadRules": [{"id": format!("preRule{e}"), "match": "{{ client.__zarazTrack }}", "op": "EQUALS", "value": e}],
            });
        }
        c["triggers"]["testTrig01"] = json!({
            "name": TEST_TRIGGER, "description": "left over from debugging", "excludeRules": [], "clientRules": [],
            "loadRules": [{"id": "testRule01", "match": "{{ client.__zarazTrack }}", "op": "EQUALS", "value": "DebugPing"}],
        });
        c["tools"]["fbPixel01"]["neoEvents"].as_array_mut().unwrap().push(json!({
            "actionType": "event", "firingTriggers": ["testTrig01"], "blockingTriggers": [], "data": {"ev": "DebugPing"},
        }));
        self.control("POST", "reset", Some(c));
        self.config()
    }

    fn settings(&self, token: &str, extra: &[(&str, &str)]) -> Config {
        let base = format!("{}/client/v4", self.url);
        let mut vars = vec![("CLOUDFLARE_API_BASE", base.as_str()), ("CLOUDFLARE_API_TOKEN", token), ("CLOUDFLARE_ZONE_ID", ZONE)];
        vars.extend_from_slice(extra);
        Config::from_source(vars.as_slice()).expect("config")
    }
}

fn keys() -> Keys {
    Keys::new("ek", "shop.test")
}

fn without_version(c: &Value) -> Value {
    let mut c = c.clone();
    c.as_object_mut().unwrap().remove("zarazVersion");
    c
}

/// The triggers of a (control) config that fire on `zaraz.track(event)`.
fn tracking(c: &Value, event: &str) -> Vec<String> {
    model::triggers_for(c["triggers"].as_object().unwrap(), event).into_iter().map(str::to_string).collect()
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    pollster::block_on(f)
}

/// The main scenario under one `zarazVersion` policy.
fn three_missing_with_a_504_in_the_middle(policy: &str) {
    let fake = Fake::start(policy, false);
    let seeded = fake.seed();
    let local = LocalStore::start();
    let (ucfg, out, iso) = (local.config(), NativeOutbound, Isolate::default());
    let store = Store::new(&ucfg, &out, &iso);
    let cfg = fake.settings(TOKEN, &[]);

    // The second PUT of the configuration times out at the edge but lands.
    fake.fault(json!({"put_status": 504, "land": true, "after_puts": 1}));
    let report =
        block(sync(&cfg, &out, Some(&store), &keys(), &SyncRequest::default())).unwrap_or_else(|e| panic!("{policy}: {e} {:?}", e.report()));
    assert_eq!(report["outcome"], "applied", "{policy}: {report:#}");
    let added: Vec<&str> = report["plan"]["add"].as_array().unwrap().iter().map(|a| a["event"].as_str().unwrap()).collect();
    assert_eq!(added, MISSING, "{policy}");
    let chunks = report["chunks"].as_array().unwrap();
    assert!(chunks.len() >= 2, "{policy}: across chunks: {chunks:#?}");
    assert!(chunks.iter().all(|c| c["changes"].as_array().unwrap().len() <= 2));
    assert!(
        chunks.iter().any(|c| c["answers"].as_array().unwrap().iter().any(|a| a.as_str().unwrap().starts_with("unknown outcome"))),
        "{policy}: the 504 shows: {chunks:#?}"
    );
    assert_eq!(report["verification"]["ok"], true, "{policy}: {report:#}");

    // The final configuration: each event once, nothing else touched, the secret alive.
    let now = fake.config();
    for e in MISSING {
        assert_eq!(tracking(&now, e).len(), 1, "{policy}: {e} once");
    }
    for e in STANDARD_EVENTS {
        assert_eq!(tracking(&now, e).len(), 1, "{policy}: {e} not duplicated");
    }
    for (id, t) in seeded["triggers"].as_object().unwrap() {
        assert_eq!(&now["triggers"][id], t, "{policy}: {id} kept");
    }
    for k in ["tools", "variables", "settings", "consent", "analytics", "debugKey", "dataLayer", "historyChange"] {
        assert_eq!(now[k], seeded[k], "{policy}: {k} kept");
    }
    assert_eq!(now["variables"]["capiToken01"]["value"], SECRET_VALUE, "{policy}: the secret survived");

    // zarazVersion: which form landed.
    let puts = fake.put_requests();
    let landed: Vec<&Value> = puts.iter().filter(|r| r["status"] == 200).collect();
    assert!(!landed.is_empty());
    match policy {
        "reject" | "ignore" => {
            assert!(puts.iter().all(|r| r["had_zaraz_version"] == false), "{policy}: {puts:#?}");
            assert_eq!(report["zaraz_version"]["form"], "omitted");
        }
        _ => {
            assert!(landed.iter().all(|r| r["had_zaraz_version"] == true), "{policy}: {puts:#?}");
            assert_eq!(report["zaraz_version"]["form"], "included");
        }
    }

    // A second run: no changes, no write.
    let before = fake.put_requests().len();
    let again = block(sync(&cfg, &out, Some(&store), &keys(), &SyncRequest::default())).unwrap();
    assert_eq!(again["outcome"], "no_changes", "{policy}: {again:#}");
    assert_eq!(fake.put_requests().len(), before, "{policy}: no PUT on a re-run");

    // The accepted form is remembered: a new catalog event goes through in one attempt.
    let cfg2 = fake.settings(TOKEN, &[("CUSTOM_EVENTS", "NewsletterOpen")]);
    let third = block(sync(&cfg2, &out, Some(&store), &keys(), &SyncRequest::default())).unwrap();
    assert_eq!(third["outcome"], "applied", "{policy}: {third:#}");
    assert_eq!(third["chunks"][0]["attempts"], 1, "{policy}: {third:#}");
    assert_eq!(tracking(&fake.config(), "NewsletterOpen").len(), 1);
}

#[test]
fn sync_under_version_policy_reject() {
    three_missing_with_a_504_in_the_middle("reject");
}

#[test]
fn sync_under_version_policy_require() {
    three_missing_with_a_504_in_the_middle("require");
}

#[test]
fn sync_under_version_policy_fence() {
    three_missing_with_a_504_in_the_middle("fence");
}

#[test]
fn sync_under_version_policy_ignore() {
    three_missing_with_a_504_in_the_middle("ignore");
}

/// A dashboard edit lands between the sync's read and its write (and another right after the
/// planning read): both survive, whatever the version policy.
#[test]
fn concurrent_edits_survive() {
    for policy in ["reject", "require", "fence", "ignore"] {
        let fake = Fake::start(policy, false);
        fake.seed();
        let out = NativeOutbound;
        let cfg = fake.settings(TOKEN, &[]);
        fake.fault(json!({"concurrent_edit": {"after_gets": 2, "rename_trigger": "leadTrig01", "name": "Lead (edited in the dashboard)"}}));
        let report = block(sync(&cfg, &out, None, &keys(), &SyncRequest::default())).unwrap_or_else(|e| panic!("{policy}: {e} {:?}", e.report()));
        assert_eq!(report["outcome"], "applied", "{policy}: {report:#}");
        let now = fake.config();
        assert_eq!(now["triggers"]["leadTrig01"]["name"], "Lead (edited in the dashboard)", "{policy}: the edit survived: {report:#}");
        for e in MISSING {
            assert_eq!(tracking(&now, e).len(), 1, "{policy}: {e}");
        }
        assert!(
            !report["replans"].as_array().unwrap().is_empty() || policy == "fence" && report["chunks"].to_string().contains("conflict"),
            "{policy}: {report:#}"
        );

        // Someone adds one of the missing triggers right after the planning read: no duplicate.
        let fake = Fake::start(policy, false);
        fake.seed();
        let cfg = fake.settings(TOKEN, &[]);
        fake.fault(json!({"concurrent_edit": {"after_gets": 1, "add_trigger": {"id": "dashPurchase", "name": "Purchase"}}}));
        let report = block(sync(&cfg, &out, None, &keys(), &SyncRequest::default())).unwrap();
        let now = fake.config();
        assert_eq!(tracking(&now, "Purchase"), vec!["dashPurchase".to_string()], "{policy}: {report:#}");
        assert_eq!(report["replans"].as_array().unwrap().len(), 1, "{policy}: {report:#}");
    }
}

#[test]
fn dry_run_writes_nothing() {
    let fake = Fake::start("ignore", false);
    fake.seed();
    let local = LocalStore::start();
    let (ucfg, out, iso) = (local.config(), NativeOutbound, Isolate::default());
    let store = Store::new(&ucfg, &out, &iso);
    let cfg = fake.settings(TOKEN, &[]);
    let req: SyncRequest = serde_json::from_str(r#"{"dry_run": true}"#).unwrap();
    let report = block(sync(&cfg, &out, Some(&store), &keys(), &req)).unwrap();
    assert_eq!(report["outcome"], "dry_run");
    assert_eq!(report["plan"]["changes"], 3);
    assert!(fake.put_requests().is_empty());
    assert_eq!(block(store.get(&checkpoint::key(&keys()))).unwrap(), None, "no checkpoint write");

    let d = block(diff(&cfg, &out)).unwrap();
    assert_eq!((d["in_sync"].clone(), d["changes"].clone()), (json!(false), json!(3)));
    let drift_now = block(drift(&cfg, &out)).unwrap();
    assert_eq!(drift_now["drift"], true);
    assert_eq!(drift_now["add"], json!(MISSING));
    assert!(fake.put_requests().is_empty());
    block(sync(&cfg, &out, Some(&store), &keys(), &SyncRequest::default())).unwrap();
    assert_eq!(block(drift(&cfg, &out)).unwrap()["drift"], false);
    let h = block(history(&cfg, &out, 3)).unwrap();
    let ids: Vec<u64> = h["records"].as_array().unwrap().iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    assert!(serde_json::from_str::<SyncRequest>(r#"{"dry_run": true, "force": true}"#).is_err(), "unknown fields are refused");
}

#[test]
fn remove_a_named_test_trigger_never_a_system_one() {
    let fake = Fake::start("ignore", false);
    fake.seed();
    let out = NativeOutbound;
    let cfg = fake.settings(TOKEN, &[]);
    let e = block(sync(&cfg, &out, None, &keys(), &SyncRequest { remove: vec!["Pageview".into()], ..SyncRequest::default() })).unwrap_err();
    assert_eq!((e.status(), e.code()), (400, "invalid_request"), "{e}");
    assert!(fake.put_requests().is_empty());

    let req = SyncRequest { remove: vec![TEST_TRIGGER.into()], ..SyncRequest::default() };
    let report = block(sync(&cfg, &out, None, &keys(), &req)).unwrap();
    assert_eq!(report["plan"]["remove"][0]["trigger_id"], "testTrig01");
    assert_eq!(report["plan"]["remove"][0]["referenced_by"], json!(["fbPixel01"]));
    let now = fake.config();
    assert!(now["triggers"].get("testTrig01").is_none());
    assert!(!now["tools"]["fbPixel01"].to_string().contains("testTrig01"));
    assert!(now["triggers"].get("leadTrig01").is_some() && now["triggers"].get("Pageview").is_some());
    // Asking again is a no-op that says the trigger is already gone.
    let again = block(sync(&cfg, &out, None, &keys(), &req)).unwrap();
    assert_eq!(again["outcome"], "no_changes");
    assert_eq!(again["plan"]["not_found"], json!([TEST_TRIGGER]));
}

#[test]
fn cloudflare_401_and_missing_settings_are_clear_errors() {
    let fake = Fake::start("ignore", false);
    let out = NativeOutbound;
    let cfg = fake.settings("wrong-token", &[]);
    for e in [block(sync(&cfg, &out, None, &keys(), &SyncRequest::default())).unwrap_err(), block(diff(&cfg, &out)).unwrap_err()] {
        assert_eq!((e.status(), e.code()), (502, "cloudflare_unauthorized"));
        assert!(e.to_string().contains("CLOUDFLARE_API_TOKEN"), "{e}");
    }
    let no_token = Config::from_source(&[("CLOUDFLARE_ZONE_ID", ZONE)][..]).unwrap();
    let e = block(sync(&no_token, &out, None, &keys(), &SyncRequest::default())).unwrap_err();
    assert_eq!((e.status(), e.code()), (503, "not_configured"));
    assert!(e.to_string().contains("CLOUDFLARE_API_TOKEN"));
    let no_zone = Config::from_source(&[("CLOUDFLARE_API_TOKEN", TOKEN)][..]).unwrap();
    assert!(block(drift(&no_zone, &out)).unwrap_err().to_string().contains("CLOUDFLARE_ZONE_ID"));
    // A 401 in the middle of a run (an injected fault) is the same error.
    let fake = Fake::start("ignore", false);
    fake.seed();
    let cfg = fake.settings(TOKEN, &[]);
    fake.fault(json!({"status": 403, "times": 1}));
    assert_eq!(block(drift(&cfg, &out)).unwrap_err().code(), "cloudflare_unauthorized");
}

/// Writes that never land: the verification fails and the start configuration is restored.
#[test]
fn failed_sync_rolls_back_to_the_start_from_history() {
    let fake = Fake::start("ignore", false);
    let seeded = fake.seed();
    let local = LocalStore::start();
    let (ucfg, out, iso) = (local.config(), NativeOutbound, Isolate::default());
    let store = Store::new(&ucfg, &out, &iso);
    let cfg = fake.settings(TOKEN, &[]);
    // From the second PUT on, every write times out at the edge and never lands.
    fake.fault(json!({"put_status": 504, "land": false, "times": 50, "after_puts": 1}));
    let e = block(sync(&cfg, &out, Some(&store), &keys(), &SyncRequest::default())).unwrap_err();
    assert_eq!((e.status(), e.code()), (502, "cloudflare_error"));
    assert!(e.to_string().contains("rolled back"), "{e}");
    let report = e.report().expect("report");
    assert_eq!(report["outcome"], "rolled_back", "{report:#}");
    assert_eq!(report["rollback"]["ok"], true);
    assert_eq!(report["chunks"][0]["status"], "applied", "the first chunk had landed");
    let now = fake.config();
    assert_eq!(without_version(&now), without_version(&seeded), "the start configuration is live again");
    assert_eq!(now["variables"]["capiToken01"]["value"], SECRET_VALUE);
    let history = fake.control("GET", "history", None);
    assert!(history[0]["description"].as_str().unwrap().starts_with("Restored configuration"), "{:#}", history[0]);
    let cp: Value = serde_json::from_str(&block(store.get(&checkpoint::key(&keys()))).unwrap().unwrap()).unwrap();
    assert_eq!(cp["run"]["state"], "rolled_back");
}

/// A zone that wipes secrets sent without a value: the values travel from the export in the
/// realtime workflow; where they cannot (preview, or the checkpoint unreadable) the sync refuses
/// unless an operator stated the zone keeps them.
#[test]
fn secrets_are_not_put_at_risk_in_a_zone_that_drops_them() {
    let fake = Fake::start("ignore", true);
    fake.seed();
    let local = LocalStore::start();
    let (ucfg, out, iso) = (local.config(), NativeOutbound, Isolate::default());
    let store = Store::new(&ucfg, &out, &iso);
    let cfg = fake.settings(TOKEN, &[]);
    block(set_secret_handling(&cfg, &store, &keys(), true)).unwrap();

    // Preview workflow: the export (published) cannot be trusted for the draft: refused.
    let set_workflow = |w: &str| {
        ureq::put(&format!("{}/client/v4/zones/{ZONE}/settings/zaraz/workflow", fake.url))
            .set("authorization", &format!("Bearer {TOKEN}"))
            .send_json(json!(w))
            .expect("workflow");
    };
    set_workflow("preview");
    let e = block(sync(&cfg, &out, Some(&store), &keys(), &SyncRequest::default())).unwrap_err();
    assert_eq!((e.status(), e.code()), (409, "secrets_at_risk"), "{e}");
    assert!(e.to_string().contains("capiToken01"));
    assert!(fake.put_requests().is_empty());
    assert_eq!(fake.config()["variables"]["capiToken01"]["value"], SECRET_VALUE);
    // A dry run still plans.
    let req = SyncRequest { dry_run: true, ..SyncRequest::default() };
    assert_eq!(block(sync(&cfg, &out, Some(&store), &keys(), &req)).unwrap()["plan"]["changes"], 3);

    // A checkpoint store that cannot be read cannot say the zone keeps secrets: refused too.
    let dead = crate::config::UpstashConfig {
        timeout_ms: 50,
        deadline_ms: 100,
        ..crate::config::UpstashConfig::new("http://127.0.0.1:9", crate::config::Secret::new("t"))
    };
    let iso2 = Isolate::default();
    let down = Store::new(&dead, &out, &iso2);
    let e = block(sync(&cfg, &out, Some(&down), &keys(), &SyncRequest::default())).unwrap_err();
    assert_eq!(e.code(), "secrets_at_risk");
    assert!(fake.put_requests().is_empty());

    // Realtime: the values are carried from the export, and the secret survives the wiping zone.
    set_workflow("realtime");
    let report = block(sync(&cfg, &out, Some(&store), &keys(), &SyncRequest::default())).unwrap_or_else(|e| panic!("{e} {:?}", e.report()));
    assert_eq!(report["outcome"], "applied", "{report:#}");
    assert_eq!(report["secrets"]["handling"], "carried_from_export");
    assert_eq!(fake.config()["variables"]["capiToken01"]["value"], SECRET_VALUE);
    assert!(!report.to_string().contains(SECRET_VALUE));
}

/// A run that would outgrow the subrequest budget pauses between chunks; the next run resumes,
/// with the options the run was started with: a re-run that does not repeat `remove` still
/// removes it, and one that asks for something else is refused while the run is unfinished.
#[test]
fn a_paused_run_resumes_from_the_checkpoint_with_its_own_options() {
    let fake = Fake::start("ignore", false);
    fake.seed();
    let local = LocalStore::start();
    let (ucfg, out, iso) = (local.config(), NativeOutbound, Isolate::default());
    let store = Store::new(&ucfg, &out, &iso);
    let cfg = fake.settings(TOKEN, &[]);
    let tight = Tuning { chunk_size: 1, call_budget: 17, ..Tuning::default() };
    let req = SyncRequest { remove: vec![TEST_TRIGGER.into()], ..SyncRequest::default() };
    let first = block(run::sync(&cfg, &out, Some(&store), &keys(), &req, &tight)).unwrap();
    assert_eq!(first["outcome"], "paused", "{first:#}");
    let done = first["chunks"].as_array().unwrap().len();
    assert!((1..3).contains(&done), "{first:#}");
    assert!(fake.config()["triggers"].get("testTrig01").is_some(), "the removal comes last, after the pause");
    let other = SyncRequest { remove: vec!["Something else".into()], ..SyncRequest::default() };
    let e = block(sync(&cfg, &out, Some(&store), &keys(), &other)).unwrap_err();
    assert_eq!((e.status(), e.code()), (409, "conflict"), "{e}");
    let second = block(sync(&cfg, &out, Some(&store), &keys(), &SyncRequest::default())).unwrap();
    assert_eq!(second["outcome"], "applied", "{second:#}");
    assert_eq!(second["checkpoint"]["resumed"], true);
    assert_eq!(second["remove"], json!([TEST_TRIGGER]));
    let now = fake.config();
    assert!(MISSING.iter().all(|e| tracking(&now, e).len() == 1));
    assert!(now["triggers"].get("testTrig01").is_none(), "removed although the re-run did not repeat it");
}

/// In the preview workflow a sync publishes when asked; secrets are not carried from the
/// (published) export there.
#[test]
fn publish_in_the_preview_workflow() {
    let fake = Fake::start("ignore", false);
    fake.seed();
    let local = LocalStore::start();
    let (ucfg, out, iso) = (local.config(), NativeOutbound, Isolate::default());
    let store = Store::new(&ucfg, &out, &iso);
    let cfg = fake.settings(TOKEN, &[]);
    // In preview the secret cannot be carried from the export: the operator states the zone keeps it.
    block(set_secret_handling(&cfg, &store, &keys(), false)).unwrap();
    ureq::put(&format!("{}/client/v4/zones/{ZONE}/settings/zaraz/workflow", fake.url))
        .set("authorization", &format!("Bearer {TOKEN}"))
        .send_json(json!("preview"))
        .expect("workflow");
    let req = SyncRequest { publish: true, ..SyncRequest::default() };
    let report = block(sync(&cfg, &out, Some(&store), &keys(), &req)).unwrap();
    assert_eq!(report["publish"]["published"], true, "{report:#}");
    assert_eq!(report["secrets"]["export"], "not_used_outside_realtime");
    let history = fake.control("GET", "history", None);
    assert!(history[0]["description"].as_str().unwrap().starts_with("edgekeeper"), "{:#}", history[0]);
}

/// The remembered `zarazVersion` form is dropped again when Cloudflare starts rejecting it.
#[test]
fn a_remembered_version_form_adapts_when_the_zone_changes_policy() {
    let fake = Fake::start("require", false);
    fake.seed();
    let local = LocalStore::start();
    let (ucfg, out, iso) = (local.config(), NativeOutbound, Isolate::default());
    let store = Store::new(&ucfg, &out, &iso);
    let first = block(sync(&fake.settings(TOKEN, &[]), &out, Some(&store), &keys(), &SyncRequest::default())).unwrap();
    assert_eq!(first["zaraz_version"]["form"], "included");
    fake.control("PUT", "version-policy", Some(json!("reject")));
    let cfg = fake.settings(TOKEN, &[("CUSTOM_EVENTS", "QuizDone")]);
    let second = block(sync(&cfg, &out, Some(&store), &keys(), &SyncRequest::default())).unwrap();
    assert_eq!(second["zaraz_version"]["remembered"], "included", "{second:#}");
    assert_eq!(second["zaraz_version"]["form"], "omitted");
    let answers = second["chunks"][0]["answers"].to_string();
    assert!(answers.contains("zarazVersion rejected") && second["chunks"][0]["attempts"] == 2, "{answers}");
    let cp: Value = serde_json::from_str(&block(store.get(&checkpoint::key(&keys()))).unwrap().unwrap()).unwrap();
    assert_eq!(cp["version_form"], "omit");
}

/// A zone without any edgekeeper trigger gets the whole catalog, within the subrequest budget
/// (pausing and resuming if it must), each event exactly once.
#[test]
fn a_fresh_zone_gets_the_whole_catalog() {
    let fake = Fake::start("fence", false);
    let local = LocalStore::start();
    let (ucfg, out, iso) = (local.config(), NativeOutbound, Isolate::default());
    let store = Store::new(&ucfg, &out, &iso);
    let cfg = fake.settings(TOKEN, &[]);
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let r = block(sync(&cfg, &out, Some(&store), &keys(), &SyncRequest::default())).unwrap();
        assert!(r["calls"].as_u64().unwrap() + r["checkpoint"]["writes"].as_u64().unwrap_or(0) <= 48, "{r:#}");
        outcomes.push(r["outcome"].as_str().unwrap().to_string());
        if outcomes.last().map(String::as_str) == Some("applied") {
            break;
        }
    }
    assert_eq!(outcomes.last().map(String::as_str), Some("applied"), "{outcomes:?}");
    let now = fake.config();
    for e in STANDARD_EVENTS {
        assert_eq!(tracking(&now, e).len(), 1, "{e}");
    }
    assert_eq!(now["variables"]["capiToken01"]["value"], SECRET_VALUE);
}
