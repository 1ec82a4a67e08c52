//! docs/walkthrough.md's local run, as written: the five `sh` blocks between its
//! `walkthrough-e2e` markers run with bash against the real API server, in order: the setup as
//! the user, `scripts/run-local` (the operator as the chart's ServiceAccount), the examples
//! applied and waited Ready, the deletion while the operator runs, and the clean-up after it
//! stopped. Three substitutions only, each one the doc names: `DC_OPERATOR` is the built binary
//! (not `cargo run --release`), the metrics port is a free one, and the block that applies
//! `examples/simulator/` runs in a folder whose copy of them points at this test's simulator
//! (its own port and database, as every scenario's).
//!
//! Then it checks what the issue found broken: the user's shell still acts as the user (same
//! `KUBECONFIG`, same context, may still create namespaces), the user's kubeconfig is unchanged
//! byte for byte, and nothing was written into the checkout (`git status --ignored` is as
//! before). The recipe's namespaces are fixed (`digital-channels`, `dc-system`): the scenario
//! refuses to start when they exist, and removes them however it ends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{
    OPERATOR_BIN, ROOT, Simulator, cluster, free_port, run, shared_scope, simulator_examples,
};

const DOC: &str = "docs/walkthrough.md";
const BEGIN: &str = "<!-- walkthrough-e2e: begin";
const END: &str = "<!-- walkthrough-e2e: end -->";
/// The namespaces and the cluster-wide RBAC objects the recipe makes.
const NAMESPACES: [&str; 2] = ["digital-channels", "dc-system"];
const CLUSTER_RBAC: &str = "dco-digital-channels-operator";
/// The metrics address the recipe passes; the test gives the operator a free port instead.
const METRICS_ADDR: &str = "127.0.0.1:8080";
/// Run in the user's shell before and after the recipe: who the shell is.
const SHELL_PROBE: &str = r#"printf 'KUBECONFIG=%s\n' "${KUBECONFIG-(unset)}"
printf 'context=%s\n' "$(kubectl config current-context)"
printf 'may create namespaces: %s\n' "$(kubectl auth can-i create namespaces)""#;

/// The `sh` blocks between the markers, in order.
fn recipe_blocks(doc: &str) -> Vec<String> {
    let start = doc.find(BEGIN).expect("the begin marker");
    let end = doc[start..].find(END).expect("the end marker") + start;
    doc[start..end]
        .split("```sh\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn the_walkthrough_marks_five_recipe_blocks() {
    let doc = std::fs::read_to_string(Path::new(ROOT).join(DOC)).expect(DOC);
    let blocks = recipe_blocks(&doc);
    assert_eq!(blocks.len(), 5, "{blocks:#?}");
    assert!(blocks[0].contains("helm template"), "{}", blocks[0]);
    assert!(blocks[1].starts_with("scripts/run-local "), "{}", blocks[1]);
    assert!(blocks[1].contains(METRICS_ADDR), "{}", blocks[1]);
    assert!(blocks[2].contains("examples/simulator/"), "{}", blocks[2]);
    assert!(blocks[3].contains("delete"), "{}", blocks[3]);
    assert!(blocks[4].contains("delete namespace"), "{}", blocks[4]);
}

fn tools_path() -> String {
    format!(
        "{ROOT}/.tools/bin:{}",
        std::env::var("PATH").unwrap_or_default()
    )
}

/// bash running `script` in `cwd` as the user's shell would, with kubectl and helm on PATH.
fn bash(script: &str, cwd: &Path) -> Command {
    let mut c = Command::new("bash");
    c.args(["-euo", "pipefail", "-c", script])
        .current_dir(cwd)
        .env("PATH", tools_path())
        .env("DC_OPERATOR", OPERATOR_BIN);
    c
}

/// Runs `script`; panics with its output when it fails or outlives `timeout`.
fn run_block(
    what: &str,
    script: &str,
    cwd: &Path,
    timeout: Duration,
    context: &dyn Fn() -> String,
) -> String {
    let out_dir = tempfile::tempdir().expect("tempdir");
    let (out, err) = (out_dir.path().join("out"), out_dir.path().join("err"));
    let mut child = bash(script, cwd)
        .stdout(std::fs::File::create(&out).expect("out"))
        .stderr(std::fs::File::create(&err).expect("err"))
        .spawn()
        .expect("bash");
    let status = wait_with_deadline(&mut child, timeout);
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    assert!(
        status.is_some_and(|s| s.success()),
        "{what} ({status:?}, limit {timeout:?}):\n{script}\nstdout:\n{}\nstderr:\n{}\n{}",
        read(&out),
        read(&err),
        context()
    );
    read(&out)
}

fn wait_with_deadline(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// The user's side: their kubeconfig files byte for byte, and the checkout's files as git sees
/// them (untracked and ignored ones included).
#[derive(Debug, PartialEq)]
struct UserSide {
    kubeconfigs: Vec<(String, Vec<u8>)>,
    checkout: String,
}

fn user_side() -> UserSide {
    let paths = std::env::var("KUBECONFIG")
        .unwrap_or_else(|_| format!("{}/.kube/config", std::env::var("HOME").unwrap_or_default()));
    let kubeconfigs = std::env::split_paths(&paths)
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read(&p).unwrap_or_default(),
            )
        })
        .collect();
    let status = run(
        "git",
        &[
            "-C",
            ROOT,
            "status",
            "--porcelain",
            "--ignored",
            "--untracked-files=all",
        ],
        None,
    );
    assert!(status.status.success(), "git status");
    let checkout = String::from_utf8_lossy(&status.stdout)
        .lines()
        .filter(|l| !l.ends_with(" target/"))
        .collect::<Vec<_>>()
        .join("\n");
    UserSide {
        kubeconfigs,
        checkout,
    }
}

fn kubectl_bin() -> String {
    let local = format!("{ROOT}/.tools/bin/kubectl");
    if Path::new(&local).exists() {
        local
    } else {
        "kubectl".to_string()
    }
}

fn exists(args: &[&str]) -> bool {
    let mut full = vec!["get"];
    full.extend_from_slice(args);
    full.extend(["-o", "name"]);
    run(&kubectl_bin(), &full, None).status.success()
}

/// The recipe's fixed namespaces must not be there: they may be someone's. Ones still
/// terminating from an earlier run are waited for.
fn assert_recipe_namespaces_absent() {
    let deadline = Instant::now() + Duration::from_secs(120);
    while NAMESPACES.iter().any(|ns| exists(&["namespace", ns])) {
        assert!(
            Instant::now() < deadline,
            "the namespaces {NAMESPACES:?} exist: the walkthrough's recipe uses them as written; \
             delete them, or run the suite against a cluster without them"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The operator started by the recipe's second block, stopped (SIGTERM to its process group,
/// as Ctrl-C reaches a terminal's foreground job) when asked or when the test ends.
struct RecipeOperator {
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl RecipeOperator {
    fn start(block: &str) -> RecipeOperator {
        use std::os::unix::process::CommandExt;
        let port = free_port();
        let script = block.replace(METRICS_ADDR, &format!("127.0.0.1:{port}"));
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("operator.log");
        let file = std::fs::File::create(&log).expect("log");
        let child = bash(&script, Path::new(ROOT))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .process_group(0)
            .spawn()
            .expect("bash");
        RecipeOperator {
            child: Some(child),
            log,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The private directory `scripts/run-local` says it keeps the operator's kubeconfig in.
    fn kubeconfig_dir(&self) -> PathBuf {
        let log = self.log();
        let path = log
            .split("its kubeconfig is ")
            .nth(1)
            .and_then(|rest| rest.split(", removed").next())
            .unwrap_or_else(|| panic!("run-local names no kubeconfig:\n{log}"));
        Path::new(path.trim())
            .parent()
            .expect("its directory")
            .to_path_buf()
    }

    /// SIGTERM to the whole process group; its exit status, `None` after 30 s.
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let group = format!("-{}", child.id());
        let _ = run("kill", &["-TERM", "--", &group], None);
        wait_with_deadline(&mut child, Duration::from_secs(30))
    }
}

impl Drop for RecipeOperator {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            let _ = run("kill", &["-KILL", "--", &format!("-{}", child.id())], None);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

/// However the scenario ends, the recipe's namespaces and cluster-wide RBAC go.
struct RemoveRecipeObjects;

impl Drop for RemoveRecipeObjects {
    fn drop(&mut self) {
        let kubectl = kubectl_bin();
        for resource in ["dct/t100", "dce/prod"] {
            let patch = r#"{"metadata":{"finalizers":null}}"#;
            let args = [
                "-n",
                NAMESPACES[0],
                "patch",
                resource,
                "--type=merge",
                "-p",
                patch,
            ];
            let _ = run(&kubectl, &args, None);
        }
        let mut args = vec![
            "delete",
            "namespace",
            "--ignore-not-found",
            "--timeout=120s",
        ];
        args.extend(NAMESPACES);
        let _ = run(&kubectl, &args, None);
        for kind in ["clusterrolebinding", "clusterrole"] {
            let _ = run(
                &kubectl,
                &["delete", kind, CLUSTER_RBAC, "--ignore-not-found"],
                None,
            );
        }
    }
}

/// A folder holding `examples/simulator/` pointed at `sim`, for the block that applies them.
fn examples_for(sim: &Simulator) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let examples = dir.path().join("examples/simulator");
    std::fs::create_dir_all(&examples).expect("examples folder");
    std::fs::write(examples.join("examples.yaml"), simulator_examples(sim)).expect("examples");
    dir
}

fn forbidden_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            (l.contains("forbidden") || l.contains("code: 403"))
                && !l.contains("because it is being terminated")
        })
        .collect()
}

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn the_walkthrough_local_run_works_as_written() {
    let Some(_client) = cluster("the_walkthrough_local_run_works_as_written").await else {
        return;
    };
    let _scope = shared_scope();
    let doc = std::fs::read_to_string(Path::new(ROOT).join(DOC)).expect(DOC);
    let blocks = recipe_blocks(&doc);
    assert_eq!(blocks.len(), 5, "{blocks:#?}");
    assert_recipe_namespaces_absent();
    let _remove = RemoveRecipeObjects;
    let sim = Simulator::start().await;
    let root = Path::new(ROOT);
    let nothing = || String::new();
    let before = user_side();
    let shell = run_block("the shell probe", SHELL_PROBE, root, MINUTE, &nothing);
    assert!(shell.contains("may create namespaces: yes"), "{shell}");

    let setup = format!("{}\n{SHELL_PROBE}", blocks[0]);
    let out = run_block("the setup block", &setup, root, 2 * MINUTE, &nothing);
    assert!(
        out.ends_with(&shell),
        "the setup changed who the shell is:\n{out}"
    );

    let mut operator = RecipeOperator::start(&blocks[1]);
    let log = || format!("--- the operator's block:\n{}", operator.log());
    let examples = examples_for(&sim);
    let apply = format!("{}\n{SHELL_PROBE}", blocks[2]);
    let out = run_block("the apply block", &apply, examples.path(), 3 * MINUTE, &log);
    assert!(
        out.ends_with(&shell),
        "the shell is no longer the user's:\n{out}"
    );
    let private = operator.kubeconfig_dir();
    assert!(private.is_dir(), "{}", private.display());
    assert!(
        !private.starts_with(ROOT),
        "{} is in the checkout",
        private.display()
    );

    run_block("the deletion block", &blocks[3], root, 2 * MINUTE, &log);
    let state = sim.state().await;
    for what in ["tenants", "clients"] {
        assert_eq!(state[what].as_object().map(|m| m.len()), Some(0), "{state}");
    }
    let stopped = operator.stop();
    let log = operator.log();
    assert!(
        stopped.is_some_and(|s| s.success()),
        "stop: {stopped:?}\n{log}"
    );
    assert!(
        !private.exists(),
        "{} outlived the operator",
        private.display()
    );
    assert_eq!(forbidden_lines(&log), Vec::<&str>::new(), "{log}");

    run_block("the clean-up block", &blocks[4], root, 3 * MINUTE, &nothing);
    for ns in NAMESPACES {
        assert!(!exists(&["namespace", ns]), "namespace {ns} is left");
    }
    for kind in ["clusterrole", "clusterrolebinding"] {
        assert!(
            !exists(&[kind, CLUSTER_RBAC]),
            "{kind} {CLUSTER_RBAC} is left"
        );
    }
    assert_eq!(
        user_side(),
        before,
        "the user's kubeconfig or the checkout changed"
    );
}
