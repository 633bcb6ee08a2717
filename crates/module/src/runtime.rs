//! Running a module: read the args file, call the module, print exactly one JSON object, exit.

use std::any::Any;
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::args::{self, ArgError, Internal};
use crate::mask::Secrets;
use crate::spec::Spec;

/// What a module hands back on success.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// Whether the module changed something (or, in check mode, would have).
    pub changed: bool,
    /// A one-line summary.
    pub msg: Option<String>,
    /// Result fields, merged at the top level of the result.
    pub data: Map<String, Value>,
    /// `before`/`after` shown with `--diff`; dropped unless diff mode is on.
    pub diff: Option<Value>,
    /// `skipped: true` (the module decided there is nothing for it to do).
    pub skipped: bool,
}

impl Outcome {
    /// An outcome with the given `changed`.
    pub fn changed(changed: bool) -> Outcome {
        Outcome {
            changed,
            ..Outcome::default()
        }
    }

    /// Adds a result field; a value that cannot be serialized becomes null (it is the module's own data).
    pub fn with(mut self, key: &str, value: impl Serialize) -> Outcome {
        self.data.insert(
            key.to_string(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        );
        self
    }

    /// Sets the message.
    pub fn msg(mut self, msg: impl Into<String>) -> Outcome {
        self.msg = Some(msg.into());
        self
    }

    /// Sets the diff.
    pub fn diff(mut self, before: Value, after: Value) -> Outcome {
        self.diff = Some(serde_json::json!({"before": before, "after": after}));
        self
    }
}

/// A module failure: a message, and result fields that help the operator (what was found, what to do).
#[derive(Debug, Default, Clone)]
pub struct Failure {
    /// The message shown as `msg`.
    pub msg: String,
    /// Extra result fields.
    pub data: Map<String, Value>,
}

impl Failure {
    /// A failure with that message.
    pub fn new(msg: impl Into<String>) -> Failure {
        Failure {
            msg: msg.into(),
            data: Map::new(),
        }
    }

    /// Adds a result field.
    pub fn with(mut self, key: &str, value: impl Serialize) -> Failure {
        self.data.insert(
            key.to_string(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        );
        self
    }
}

impl<E: std::error::Error> From<E> for Failure {
    /// The error and its chain of sources, joined with ": ".
    fn from(e: E) -> Failure {
        let mut msg = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            let text = s.to_string();
            if !msg.contains(&text) {
                msg.push_str(": ");
                msg.push_str(&text);
            }
            source = s.source();
        }
        Failure::new(msg)
    }
}

/// What the module body sees: its validated options and the run's settings.
#[derive(Debug)]
pub struct Ctx {
    params: Map<String, Value>,
    internal: Internal,
    warnings: Vec<String>,
    module: &'static str,
}

impl Ctx {
    /// The options, deserialized into the module's own type. Every option of the spec is present
    /// (null when not given and without default), so `Option<T>` fields map to optional options.
    pub fn options<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        serde_json::from_value(Value::Object(self.params.clone())).map_err(|e| {
            Failure::new(format!(
                "module {}: options do not match the module's option types: {e}",
                self.module
            ))
        })
    }

    /// The validated options as JSON.
    pub fn params(&self) -> &Map<String, Value> {
        &self.params
    }

    /// True when the task runs with `check_mode: true`: the module must not change anything.
    pub fn check_mode(&self) -> bool {
        self.internal.check_mode
    }

    /// Adds a warning shown by Ansible after the task.
    pub fn warn(&mut self, msg: impl Into<String>) {
        self.warnings.push(msg.into());
    }
}

/// Holds the message of a panic until `run` prints it; a panic hook must not print to stdout itself,
/// or the result would not be exactly one JSON object.
static PANIC_MESSAGE: Mutex<Option<String>> = Mutex::new(None);

/// Runs a module as Ansible calls a binary module (`argv[1]` is the args file) and returns its exit
/// code. The closure gets the validated options; whatever it returns, an error or a panic, one JSON
/// object is printed on stdout.
pub fn run<F>(spec: &Spec, body: F) -> ExitCode
where
    F: FnOnce(&mut Ctx) -> Result<Outcome, Failure>,
{
    let Some(path) = std::env::args().nth(1) else {
        return emit(
            &Secrets::default(),
            fail_value(
                "no arguments file given: Ansible runs a binary module as `module ARGS_FILE`"
                    .into(),
            ),
            false,
        );
    };
    if path == "--print-argspec" {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", spec.to_json());
        return ExitCode::SUCCESS;
    }
    if path == "--check-args" {
        // Validation only, as a run would validate, and nothing else: what the test of the modules'
        // documented EXAMPLES uses, since ansible-lint cannot read a binary module's options.
        return check_args(spec, std::env::args().nth(2).as_deref().unwrap_or_default());
    }
    let raw = match read_args(&path) {
        Ok(raw) => raw,
        Err(e) => return emit(&Secrets::default(), fail_value(e.to_string()), false),
    };
    let diverted = StdoutDiversion::start();
    let (value, ok, secrets) = execute(spec, &raw, body);
    drop(diverted);
    emit(&secrets, value, ok)
}

/// While a module body runs, anything written to stdout by accident (a stray print in a library)
/// goes to stderr instead: Ansible must read exactly one JSON object on stdout.
struct StdoutDiversion {
    saved: Option<libc::c_int>,
}

impl StdoutDiversion {
    fn start() -> StdoutDiversion {
        let _ = std::io::stdout().flush();
        // SAFETY: dup/dup2 on the process's own standard descriptors; failures leave stdout as is.
        let saved = unsafe {
            let saved = libc::dup(libc::STDOUT_FILENO);
            if saved >= 0 && libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) >= 0 {
                Some(saved)
            } else {
                if saved >= 0 {
                    libc::close(saved);
                }
                None
            }
        };
        StdoutDiversion { saved }
    }
}

impl Drop for StdoutDiversion {
    fn drop(&mut self) {
        let _ = std::io::stdout().flush();
        if let Some(fd) = self.saved.take() {
            // SAFETY: restores the descriptor saved in `start`.
            unsafe {
                libc::dup2(fd, libc::STDOUT_FILENO);
                libc::close(fd);
            }
        }
    }
}

/// Produces the result object (unmasked), whether it succeeded, and the secrets to mask.
pub fn execute<F>(spec: &Spec, raw: &Map<String, Value>, body: F) -> (Value, bool, Secrets)
where
    F: FnOnce(&mut Ctx) -> Result<Outcome, Failure>,
{
    let raw_secrets = Secrets::from_raw(spec, raw);
    let params = match args::parse(spec, raw) {
        Ok(p) => p,
        Err(e) => return (fail_value(e.to_string()), false, raw_secrets),
    };
    let secrets = Secrets::from_params(spec, &params.values);
    let invocation = params
        .internal
        .inject_invocation
        .then(|| serde_json::json!({"module_args": Value::Object(params.values.clone())}));

    if params.internal.check_mode && !spec.supports_check_mode {
        let mut v = Map::new();
        v.insert("changed".into(), Value::Bool(false));
        v.insert("skipped".into(), Value::Bool(true));
        v.insert(
            "msg".into(),
            Value::String(format!(
                "module {} does not support check mode: it changed nothing",
                spec.module
            )),
        );
        if let Some(inv) = invocation {
            v.insert("invocation".into(), inv);
        }
        return (Value::Object(v), true, secrets);
    }

    let mut ctx = Ctx {
        params: params.values,
        internal: params.internal,
        warnings: Vec::new(),
        module: spec.module,
    };
    let diff_mode = ctx.internal.diff;
    let previous_hook = panic::take_hook();
    panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if let Ok(mut slot) = PANIC_MESSAGE.lock() {
            *slot = Some(format!("{}{location}", panic_text(info.payload())));
        }
    }));
    let result = panic::catch_unwind(AssertUnwindSafe(|| body(&mut ctx)));
    panic::set_hook(previous_hook);

    let mut out = Map::new();
    let ok = match result {
        Ok(Ok(outcome)) => {
            out.extend(outcome.data);
            out.insert("changed".into(), Value::Bool(outcome.changed));
            if outcome.skipped {
                out.insert("skipped".into(), Value::Bool(true));
            }
            if let Some(m) = outcome.msg {
                out.insert("msg".into(), Value::String(m));
            }
            if let (true, Some(d)) = (diff_mode, outcome.diff) {
                out.insert("diff".into(), d);
            }
            true
        }
        Ok(Err(failure)) => {
            out.extend(failure.data);
            out.insert("failed".into(), Value::Bool(true));
            out.insert(
                "changed".into(),
                out.get("changed").cloned().unwrap_or(Value::Bool(false)),
            );
            out.insert("msg".into(), Value::String(failure.msg));
            false
        }
        Err(payload) => {
            let text = PANIC_MESSAGE
                .lock()
                .ok()
                .and_then(|mut s| s.take())
                .unwrap_or_else(|| panic_text(payload.as_ref()));
            out.insert("failed".into(), Value::Bool(true));
            out.insert("changed".into(), Value::Bool(false));
            out.insert(
                "msg".into(),
                Value::String(format!("module {} crashed: {text}", spec.module)),
            );
            false
        }
    };
    if !ctx.warnings.is_empty() {
        out.insert("warnings".into(), Value::from(ctx.warnings));
    }
    if let Some(inv) = invocation {
        out.insert("invocation".into(), inv);
    }
    (Value::Object(out), ok, secrets)
}

fn check_args(spec: &Spec, path: &str) -> ExitCode {
    let raw = match read_args(path) {
        Ok(raw) => raw,
        Err(e) => return emit(&Secrets::default(), fail_value(e.to_string()), false),
    };
    let secrets = Secrets::from_raw(spec, &raw);
    match args::parse(spec, &raw) {
        Ok(_) => emit(
            &secrets,
            serde_json::json!({"changed": false, "msg": format!("valid options for {}", spec.module)}),
            true,
        ),
        Err(e) => emit(&secrets, fail_value(e.to_string()), false),
    }
}

fn panic_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-text payload".to_string()
    }
}

fn fail_value(msg: String) -> Value {
    serde_json::json!({"failed": true, "changed": false, "msg": msg})
}

fn read_args(path: &str) -> Result<Map<String, Value>, ArgError> {
    let text = std::fs::read_to_string(path).map_err(|e| ArgError::ArgsFile {
        path: path.to_string(),
        reason: e.to_string(),
    })?;
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ArgError::ArgsFile {
            path: path.to_string(),
            reason: "not a JSON object".into(),
        }),
        Err(e) => Err(ArgError::ArgsFile {
            path: path.to_string(),
            reason: format!("not JSON: {e}"),
        }),
    }
}

fn emit(secrets: &Secrets, value: Value, ok: bool) -> ExitCode {
    let value = secrets.mask(value);
    let text = serde_json::to_string(&value).unwrap_or_else(|e| {
        format!(
            r#"{{"failed": true, "msg": "module result could not be serialized: {}"}}"#,
            e.to_string().replace('"', "'")
        )
    });
    let mut out = std::io::stdout().lock();
    let written = writeln!(out, "{text}").and_then(|()| out.flush());
    if ok && written.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Opt, Type};
    use serde_json::json;

    fn spec() -> Spec {
        Spec::new("t")
            .opt(Opt::new("name", Type::Str).required())
            .opt(Opt::new("password", Type::Str).secret())
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("test input is an object"),
        }
    }

    fn masked(
        spec: &Spec,
        raw: Value,
        body: impl FnOnce(&mut Ctx) -> Result<Outcome, Failure>,
    ) -> (Value, bool) {
        let (v, ok, s) = execute(spec, &obj(raw), body);
        (s.mask(v), ok)
    }

    #[test]
    fn success_merges_data() {
        let (v, ok) = masked(&spec(), json!({"name": "a"}), |_| {
            Ok(Outcome::changed(true).with("x", 1).msg("done"))
        });
        assert!(ok);
        assert_eq!(v, json!({"changed": true, "x": 1, "msg": "done"}));
    }

    #[test]
    fn failure_and_secret_masked_in_message() {
        let (v, ok) = masked(&spec(), json!({"name": "a", "password": "pw-123"}), |ctx| {
            let o: Map<String, Value> = ctx.options()?;
            Err(Failure::new(format!(
                "login with {} refused",
                o["password"].as_str().unwrap_or("")
            )))
        });
        assert!(!ok);
        assert_eq!(v["failed"], json!(true));
        assert_eq!(v["msg"], json!("login with ******** refused"));
    }

    #[test]
    fn secret_in_unknown_option_error_is_masked() {
        let (v, ok) = masked(
            &spec(),
            json!({"name": "a", "password": "pw-123", "pw-123": 1}),
            |_| Ok(Outcome::default()),
        );
        assert!(!ok);
        let msg = v["msg"].as_str().unwrap_or_default();
        assert!(msg.contains("unsupported parameters"), "{msg}");
        assert!(!msg.contains("pw-123"), "{msg}");
    }

    #[test]
    fn panic_becomes_failure() {
        let (v, ok) = masked(&spec(), json!({"name": "a", "password": "pw-123"}), |_| {
            panic!("boom pw-123")
        });
        assert!(!ok);
        assert_eq!(v["failed"], json!(true));
        let msg = v["msg"].as_str().unwrap_or_default();
        assert!(msg.starts_with("module t crashed: boom ********"), "{msg}");
    }

    #[test]
    fn check_mode_unsupported_is_skipped_without_running() {
        let s = spec().no_check_mode();
        let mut ran = false;
        let (v, ok) = masked(
            &s,
            json!({"name": "a", "_ansible_check_mode": true}),
            |_| {
                ran = true;
                Ok(Outcome::changed(true))
            },
        );
        assert!(ok && !ran);
        assert_eq!(v["skipped"], json!(true));
        assert_eq!(v["changed"], json!(false));
    }

    #[test]
    fn check_mode_is_visible_to_supporting_module() {
        let (v, _) = masked(
            &spec(),
            json!({"name": "a", "_ansible_check_mode": true}),
            |ctx| Ok(Outcome::changed(true).with("check", ctx.check_mode())),
        );
        assert_eq!(v["check"], json!(true));
    }

    #[test]
    fn diff_only_in_diff_mode() {
        let body = |_: &mut Ctx| Ok(Outcome::changed(true).diff(json!("a"), json!("b")));
        let (v, _) = masked(&spec(), json!({"name": "a"}), body);
        assert!(v.get("diff").is_none());
        let (v, _) = masked(&spec(), json!({"name": "a", "_ansible_diff": true}), body);
        assert_eq!(v["diff"], json!({"before": "a", "after": "b"}));
    }

    #[test]
    fn invocation_only_when_injected_and_masked() {
        let (v, _) = masked(&spec(), json!({"name": "a", "password": "pw"}), |_| {
            Ok(Outcome::default())
        });
        assert!(v.get("invocation").is_none());
        let (v, _) = masked(
            &spec(),
            json!({"name": "a", "password": "pw-9", "_ansible_inject_invocation": true}),
            |_| Ok(Outcome::default()),
        );
        assert_eq!(
            v["invocation"]["module_args"]["password"],
            json!("********")
        );
        assert_eq!(v["invocation"]["module_args"]["name"], json!("a"));
    }

    #[test]
    fn warnings_are_listed() {
        let (v, _) = masked(&spec(), json!({"name": "a"}), |ctx| {
            ctx.warn("careful");
            Ok(Outcome::default())
        });
        assert_eq!(v["warnings"], json!(["careful"]));
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn failure_from_error_keeps_the_chain() {
        let f: Failure = Outer(std::io::Error::other("inner cause")).into();
        assert_eq!(f.msg, "outer: inner cause");
    }
}
