//! Turning the raw JSON args file into validated, typed parameters (the "low args" to "high args" step).

use serde_json::{Map, Value};

use crate::spec::{Opt, Spec, Type};

/// What is wrong with the arguments a task gave. Every variant names the option at fault.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ArgError {
    /// The args file could not be read.
    #[error("cannot read the module arguments file {path}: {reason}")]
    ArgsFile {
        /// Path given as argv[1].
        path: String,
        /// Why it could not be read or parsed.
        reason: String,
    },
    /// Options the module does not know.
    #[error("unsupported parameters for ({module}) module: {unknown}. Supported parameters include: {supported}")]
    Unknown {
        /// The module.
        module: &'static str,
        /// The unknown option names, comma separated.
        unknown: String,
        /// Every supported name.
        supported: String,
    },
    /// A required option is missing.
    #[error("missing required arguments for ({module}) module: {names}")]
    Missing {
        /// The module.
        module: &'static str,
        /// The missing names, comma separated.
        names: String,
    },
    /// A value could not be converted to the option's type.
    #[error("option '{option}' of module {module} must be {expected}, got {got}")]
    WrongType {
        /// The module.
        module: &'static str,
        /// The option (and element index for lists).
        option: String,
        /// The type wanted.
        expected: &'static str,
        /// What was given, shortened.
        got: String,
    },
    /// A value is not among the choices.
    #[error("option '{option}' of module {module} must be one of: {choices}, got {got}")]
    NotAChoice {
        /// The module.
        module: &'static str,
        /// The option.
        option: String,
        /// The allowed values.
        choices: String,
        /// What was given.
        got: String,
    },
    /// The same option was given under two of its names.
    #[error("option '{option}' of module {module} was given twice, as '{first}' and '{second}'")]
    Duplicate {
        /// The module.
        module: &'static str,
        /// The canonical name.
        option: &'static str,
        /// One name used.
        first: String,
        /// The other name used.
        second: String,
    },
    /// Options that exclude each other were given together.
    #[error("parameters are mutually exclusive for ({module}) module: {names}")]
    MutuallyExclusive {
        /// The module.
        module: &'static str,
        /// The options given together.
        names: String,
    },
    /// None of a set of options was given.
    #[error("one of the following is required for ({module}) module: {names}")]
    RequiredOneOf {
        /// The module.
        module: &'static str,
        /// The set.
        names: String,
    },
    /// A conditional requirement failed.
    #[error(
        "{option} is {value} but all of the following are missing for ({module}) module: {names}"
    )]
    RequiredIf {
        /// The module.
        module: &'static str,
        /// The deciding option.
        option: &'static str,
        /// Its value.
        value: &'static str,
        /// The missing options.
        names: String,
    },
}

/// The internal `_ansible_*` keys the runtime understands; the rest of them are ignored.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Internal {
    /// `_ansible_check_mode`.
    pub check_mode: bool,
    /// `_ansible_diff`.
    pub diff: bool,
    /// `_ansible_inject_invocation`.
    pub inject_invocation: bool,
    /// `_ansible_verbosity`.
    pub verbosity: u64,
}

/// Validated parameters: every option of the spec is present under its canonical name (null when
/// absent without default).
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// The parameters, keyed by canonical option name.
    pub values: Map<String, Value>,
    /// The `_ansible_*` settings.
    pub internal: Internal,
}

/// Splits `raw` into task options and `_ansible_*` keys, then validates and coerces the options.
pub fn parse(spec: &Spec, raw: &Map<String, Value>) -> Result<Params, ArgError> {
    let mut internal = Internal::default();
    let mut given: Vec<(&str, &Value)> = Vec::new();
    for (k, v) in raw {
        if let Some(key) = k.strip_prefix("_ansible_") {
            let flag = coerce_bool(v).unwrap_or(false);
            match key {
                "check_mode" => internal.check_mode = flag,
                "diff" => internal.diff = flag,
                "inject_invocation" => internal.inject_invocation = flag,
                "verbosity" => internal.verbosity = v.as_u64().unwrap_or(0),
                _ => {}
            }
        } else {
            given.push((k.as_str(), v));
        }
    }

    let unknown: Vec<&str> = given
        .iter()
        .filter(|(k, _)| spec.find(k).is_none())
        .map(|(k, _)| *k)
        .collect();
    if !unknown.is_empty() {
        return Err(ArgError::Unknown {
            module: spec.module,
            unknown: unknown.join(", "),
            supported: spec.supported(),
        });
    }

    let mut values = Map::new();
    let mut seen_as: Map<String, Value> = Map::new();
    for (key, value) in &given {
        let Some(opt) = spec.find(key) else { continue };
        if let Some(Value::String(first)) = seen_as.get(opt.name) {
            return Err(ArgError::Duplicate {
                module: spec.module,
                option: opt.name,
                first: first.clone(),
                second: key.to_string(),
            });
        }
        seen_as.insert(opt.name.to_string(), Value::String(key.to_string()));
        if !value.is_null() {
            values.insert(opt.name.to_string(), coerce_opt(spec, opt, value)?);
        }
    }

    let missing: Vec<&str> = spec
        .options
        .iter()
        .filter(|o| o.required && !values.contains_key(o.name))
        .map(|o| o.name)
        .collect();
    if !missing.is_empty() {
        return Err(ArgError::Missing {
            module: spec.module,
            names: missing.join(", "),
        });
    }
    check_relations(spec, &values)?;

    for o in &spec.options {
        if !values.contains_key(o.name) {
            let v = match &o.default {
                Some(d) => coerce_opt(spec, o, d)?,
                None => Value::Null,
            };
            values.insert(o.name.to_string(), v);
        }
    }
    Ok(Params { values, internal })
}

fn check_relations(spec: &Spec, values: &Map<String, Value>) -> Result<(), ArgError> {
    let given = |n: &str| values.get(n).is_some_and(|v| !v.is_null());
    for set in &spec.mutually_exclusive {
        let both: Vec<&str> = set.iter().copied().filter(|n| given(n)).collect();
        if both.len() > 1 {
            return Err(ArgError::MutuallyExclusive {
                module: spec.module,
                names: both.join("|"),
            });
        }
    }
    for set in &spec.required_one_of {
        if !set.iter().any(|n| given(n)) {
            return Err(ArgError::RequiredOneOf {
                module: spec.module,
                names: set.join(", "),
            });
        }
    }
    for (name, value, required) in &spec.required_if {
        if values.get(*name).and_then(Value::as_str) == Some(*value) {
            let missing: Vec<&str> = required.iter().copied().filter(|n| !given(n)).collect();
            if !missing.is_empty() {
                return Err(ArgError::RequiredIf {
                    module: spec.module,
                    option: name,
                    value,
                    names: missing.join(", "),
                });
            }
        }
    }
    Ok(())
}

fn coerce_opt(spec: &Spec, opt: &Opt, value: &Value) -> Result<Value, ArgError> {
    let wrong = |option: String, expected: Type, got: &Value| ArgError::WrongType {
        module: spec.module,
        option,
        expected: expected.describe(),
        got: describe_value(got, opt.secret.is_some()),
    };
    let v = coerce(opt.ty, value).ok_or_else(|| wrong(opt.name.to_string(), opt.ty, value))?;
    let v = match (v, opt.elements) {
        (Value::Array(items), Some(et)) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(
                    coerce(et, item)
                        .ok_or_else(|| wrong(format!("{}[{i}]", opt.name), et, item))?,
                );
            }
            Value::Array(out)
        }
        (v, _) => v,
    };
    if !opt.choices.is_empty() {
        let check = |item: &Value| -> Result<(), ArgError> {
            let text = match item {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if opt.choices.contains(&text.as_str()) {
                Ok(())
            } else {
                Err(ArgError::NotAChoice {
                    module: spec.module,
                    option: opt.name.to_string(),
                    choices: opt.choices.join(", "),
                    got: describe_value(item, opt.secret.is_some()),
                })
            }
        };
        match &v {
            Value::Array(items) => items.iter().try_for_each(check)?,
            other => check(other)?,
        }
    }
    Ok(v)
}

/// Shows a rejected value in an error without leaking a secret one.
fn describe_value(v: &Value, secret: bool) -> String {
    if secret {
        return format!("{} (value hidden: the option is secret)", kind_of(v));
    }
    let text = v.to_string();
    let short: String = text.chars().take(60).collect();
    if short.len() < text.len() {
        format!("{} {short}...", kind_of(v))
    } else {
        format!("{} {short}", kind_of(v))
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "dictionary",
    }
}

/// Ansible's boolean spellings.
pub fn coerce_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_f64() {
            Some(x) if x == 1.0 => Some(true),
            Some(x) if x == 0.0 => Some(false),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "yes" | "on" | "1" | "true" | "y" | "t" => Some(true),
            "no" | "off" | "0" | "false" | "n" | "f" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn coerce(ty: Type, v: &Value) -> Option<Value> {
    match ty {
        Type::Raw => Some(v.clone()),
        Type::Str => match v {
            Value::String(_) => Some(v.clone()),
            Value::Number(n) => Some(Value::String(n.to_string())),
            Value::Bool(b) => Some(Value::String(if *b { "True" } else { "False" }.to_string())),
            _ => None,
        },
        Type::Path => match v {
            Value::String(s) => Some(Value::String(expand_path(s))),
            _ => None,
        },
        Type::Bool => coerce_bool(v).map(Value::Bool),
        Type::Int => match v {
            Value::Number(n) if n.is_i64() || n.is_u64() => Some(v.clone()),
            Value::Number(n) => n
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| Value::from(f as i64)),
            Value::String(s) => s.trim().parse::<i64>().ok().map(Value::from),
            _ => None,
        },
        Type::Float => match v {
            Value::Number(_) => Some(v.clone()),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number),
            _ => None,
        },
        Type::List => match v {
            Value::Array(_) => Some(v.clone()),
            Value::String(s) if s.is_empty() => Some(Value::Array(vec![])),
            Value::String(s) => Some(Value::Array(
                s.split(',')
                    .map(|p| Value::String(p.trim().to_string()))
                    .collect(),
            )),
            Value::Number(_) | Value::Bool(_) => Some(Value::Array(vec![v.clone()])),
            _ => None,
        },
        Type::Dict => match v {
            Value::Object(_) => Some(v.clone()),
            Value::String(s) => parse_dict_string(s),
            _ => None,
        },
    }
}

fn parse_dict_string(s: &str) -> Option<Value> {
    let t = s.trim();
    if t.starts_with('{') {
        return serde_json::from_str::<Value>(t)
            .ok()
            .filter(Value::is_object);
    }
    let mut m = Map::new();
    for part in t.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=')?;
        m.insert(k.trim().to_string(), Value::String(v.trim().to_string()));
    }
    Some(Value::Object(m))
}

/// `~` and `$VAR`/`${VAR}` expansion, as Ansible does for `type: path`.
fn expand_path(s: &str) -> String {
    let home = std::env::var("HOME").unwrap_or_default();
    let s = if s == "~" {
        home.clone()
    } else if let Some(rest) = s.strip_prefix("~/") {
        format!("{home}/{rest}")
    } else {
        s.to_string()
    };
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let braced = chars.peek() == Some(&'{');
        if braced {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_alphanumeric() || n == '_' {
                name.push(n);
                chars.next();
            } else {
                break;
            }
        }
        if braced && chars.peek() == Some(&'}') {
            chars.next();
        }
        match std::env::var(&name) {
            Ok(val) if !name.is_empty() => out.push_str(&val),
            _ if name.is_empty() => out.push('$'),
            _ => {
                out.push('$');
                if braced {
                    out.push('{');
                    out.push_str(&name);
                    out.push('}');
                } else {
                    out.push_str(&name);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> Spec {
        Spec::new("demo")
            .opt(
                Opt::new("name", Type::Str)
                    .required()
                    .aliases(&["display_name"]),
            )
            .opt(Opt::new("count", Type::Int).default(3))
            .opt(Opt::new("ratio", Type::Float))
            .opt(Opt::new("enabled", Type::Bool).default(false))
            .opt(
                Opt::new("state", Type::Str)
                    .choices(&["present", "absent"])
                    .default("present"),
            )
            .opt(Opt::new("tags", Type::List).elements(Type::Str))
            .opt(Opt::new("ports", Type::List).elements(Type::Int))
            .opt(Opt::new("extra", Type::Dict))
            .opt(Opt::new("password", Type::Str).secret())
            .opt(Opt::new("dir", Type::Path))
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("test input is an object"),
        }
    }

    #[test]
    fn defaults_and_coercion() {
        let p = parse(
            &spec(),
            &obj(
                json!({"name": "a", "count": "7", "enabled": "yes", "ratio": "0.5",
            "tags": "x, y", "ports": ["22", 80], "extra": "k=v,l=w"}),
            ),
        )
        .expect("valid");
        assert_eq!(p.values["count"], json!(7));
        assert_eq!(p.values["enabled"], json!(true));
        assert_eq!(p.values["ratio"], json!(0.5));
        assert_eq!(p.values["state"], json!("present"));
        assert_eq!(p.values["tags"], json!(["x", "y"]));
        assert_eq!(p.values["ports"], json!([22, 80]));
        assert_eq!(p.values["extra"], json!({"k": "v", "l": "w"}));
        assert_eq!(p.values["password"], Value::Null);
    }

    #[test]
    fn bool_spellings() {
        for (v, want) in [
            ("on", true),
            ("No", false),
            ("1", true),
            ("f", false),
            ("TRUE", true),
        ] {
            assert_eq!(coerce_bool(&json!(v)), Some(want), "{v}");
        }
        assert_eq!(coerce_bool(&json!("maybe")), None);
        assert_eq!(coerce_bool(&json!(2)), None);
    }

    #[test]
    fn alias_is_accepted_and_duplicate_rejected() {
        let p = parse(&spec(), &obj(json!({"display_name": "a"}))).expect("alias");
        assert_eq!(p.values["name"], json!("a"));
        let e = parse(&spec(), &obj(json!({"display_name": "a", "name": "b"}))).unwrap_err();
        assert!(
            matches!(e, ArgError::Duplicate { option: "name", .. }),
            "{e}"
        );
    }

    #[test]
    fn unknown_option_names_it_and_lists_valid_ones() {
        let e = parse(&spec(), &obj(json!({"name": "a", "colour": "red"}))).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("colour"), "{msg}");
        assert!(msg.contains("name (display_name)"), "{msg}");
        assert!(msg.contains("ratio"), "{msg}");
    }

    #[test]
    fn wrong_type_names_the_option() {
        let e = parse(&spec(), &obj(json!({"name": "a", "count": "many"}))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "option 'count' of module demo must be an integer, got string \"many\""
        );
        let e = parse(&spec(), &obj(json!({"name": "a", "ports": [22, "ssh"]}))).unwrap_err();
        assert!(e.to_string().contains("'ports[1]'"), "{e}");
        let e = parse(&spec(), &obj(json!({"name": {"a": 1}}))).unwrap_err();
        assert!(e.to_string().contains("'name'"), "{e}");
    }

    #[test]
    fn wrong_type_of_secret_hides_the_value() {
        let e = parse(&spec(), &obj(json!({"name": "a", "password": ["hunter2"]}))).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(e.to_string().contains("'password'"), "{e}");
    }

    #[test]
    fn required_and_choices() {
        let e = parse(&spec(), &obj(json!({"count": 1}))).unwrap_err();
        assert_eq!(
            e,
            ArgError::Missing {
                module: "demo",
                names: "name".into()
            }
        );
        let e = parse(&spec(), &obj(json!({"name": null}))).unwrap_err();
        assert!(matches!(e, ArgError::Missing { .. }));
        let e = parse(&spec(), &obj(json!({"name": "a", "state": "gone"}))).unwrap_err();
        assert!(e.to_string().contains("present, absent"), "{e}");
    }

    #[test]
    fn internal_keys_are_read_and_not_options() {
        let p = parse(
            &spec(),
            &obj(
                json!({"name": "a", "_ansible_check_mode": true, "_ansible_diff": "yes",
            "_ansible_inject_invocation": true, "_ansible_verbosity": 3, "_ansible_new_thing": 1}),
            ),
        )
        .expect("valid");
        assert_eq!(
            p.internal,
            Internal {
                check_mode: true,
                diff: true,
                inject_invocation: true,
                verbosity: 3
            }
        );
        assert!(!p.values.contains_key("_ansible_check_mode"));
    }

    #[test]
    fn relations() {
        let s = Spec::new("rel")
            .opt(Opt::new("a", Type::Str))
            .opt(Opt::new("b", Type::Str))
            .opt(Opt::new("state", Type::Str).default("present"))
            .mutually_exclusive(&["a", "b"])
            .required_one_of(&["a", "b"])
            .required_if("state", "absent", &["b"]);
        assert!(matches!(
            parse(&s, &obj(json!({"a": "1", "b": "2"}))),
            Err(ArgError::MutuallyExclusive { .. })
        ));
        assert!(matches!(
            parse(&s, &obj(json!({}))),
            Err(ArgError::RequiredOneOf { .. })
        ));
        assert!(matches!(
            parse(&s, &obj(json!({"a": "1", "state": "absent"}))),
            Err(ArgError::RequiredIf { .. })
        ));
        assert!(parse(&s, &obj(json!({"b": "1", "state": "absent"}))).is_ok());
    }

    #[test]
    fn path_expansion() {
        std::env::set_var("OSM_TEST_DIR", "/srv/osm");
        assert_eq!(expand_path("$OSM_TEST_DIR/x"), "/srv/osm/x");
        assert_eq!(expand_path("${OSM_TEST_DIR}x"), "/srv/osmx");
        assert_eq!(expand_path("$OSM_UNSET_VAR_123/x"), "$OSM_UNSET_VAR_123/x");
        assert_eq!(expand_path("a$"), "a$");
    }
}
