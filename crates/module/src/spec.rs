//! The argument specification of a module: what Ansible's Python modules declare as `argument_spec`.
//!
//! Binary modules get no validation from the controller, so the spec is the single place that says
//! which options exist, their types, defaults, aliases, choices and which ones are secret.

use serde_json::Value;

/// The type an option's value is coerced to, as Ansible users expect (`"yes"` is a bool, `"5"` an int).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// A string; numbers and booleans given for it are converted to their text.
    Str,
    /// A boolean: `true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0`, `y`/`n`, `t`/`f`.
    Bool,
    /// An integer; a string holding an integer is accepted.
    Int,
    /// A number; a string holding a number is accepted.
    Float,
    /// A filesystem path: a string with `~` and `$VAR` expanded.
    Path,
    /// A list; a comma-separated string is split, as Ansible does.
    List,
    /// A mapping; a JSON object in a string or `k=v,k2=v2` is accepted.
    Dict,
    /// Anything, passed through unchanged.
    Raw,
}

impl Type {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Type::Str => "a string",
            Type::Bool => "a boolean",
            Type::Int => "an integer",
            Type::Float => "a number",
            Type::Path => "a path",
            Type::List => "a list",
            Type::Dict => "a dictionary",
            Type::Raw => "any value",
        }
    }
}

/// What of an option's value is secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Secret {
    /// All of it: every string inside.
    Value,
    /// A cloud connection (a clouds.yaml cloud name, or a mapping of connection options with
    /// `auth`): every string in a mapping is secret except the values of keys known to name rather
    /// than prove (`auth_url`, `username`, `project_name`, `region_name`, ...). A key not known is
    /// secret, so a new credential field cannot leak by its name; a bare name is not.
    Credentials,
}

/// One option of a module.
#[derive(Debug, Clone)]
pub struct Opt {
    pub(crate) name: &'static str,
    pub(crate) ty: Type,
    pub(crate) elements: Option<Type>,
    pub(crate) required: bool,
    pub(crate) default: Option<Value>,
    pub(crate) aliases: &'static [&'static str],
    pub(crate) choices: &'static [&'static str],
    pub(crate) secret: Option<Secret>,
}

impl Opt {
    /// An optional option of the given type, without default.
    pub fn new(name: &'static str, ty: Type) -> Opt {
        Opt {
            name,
            ty,
            elements: None,
            required: false,
            default: None,
            aliases: &[],
            choices: &[],
            secret: None,
        }
    }

    /// The option must be given (and not null).
    pub fn required(mut self) -> Opt {
        self.required = true;
        self
    }

    /// The value used when the option is absent or null.
    pub fn default(mut self, value: impl Into<Value>) -> Opt {
        self.default = Some(value.into());
        self
    }

    /// Other names the option may be given under.
    pub fn aliases(mut self, aliases: &'static [&'static str]) -> Opt {
        self.aliases = aliases;
        self
    }

    /// The only values allowed (for a list, for each element).
    pub fn choices(mut self, choices: &'static [&'static str]) -> Opt {
        self.choices = choices;
        self
    }

    /// The type each element of a list option is coerced to.
    pub fn elements(mut self, ty: Type) -> Opt {
        self.elements = Some(ty);
        self
    }

    /// The option holds a secret (`no_log`): its value, and any string inside it, is masked in every
    /// output of the module.
    pub fn secret(mut self) -> Opt {
        self.secret = Some(Secret::Value);
        self
    }

    /// The option holds a cloud connection's credentials (`no_log`, like openstack.cloud's `auth`):
    /// every string in a mapping is masked in every output, except the values of the keys that name
    /// rather than prove (`auth_url`, `username`, `project_name`, `region_name`, ...); a bare string
    /// (a clouds.yaml cloud name) is not masked.
    pub fn credentials(mut self) -> Opt {
        self.secret = Some(Secret::Credentials);
        self
    }

    /// The option's name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// The options of a module and the rules between them.
#[derive(Debug, Clone)]
pub struct Spec {
    pub(crate) module: &'static str,
    pub(crate) options: Vec<Opt>,
    pub(crate) supports_check_mode: bool,
    pub(crate) mutually_exclusive: Vec<&'static [&'static str]>,
    pub(crate) required_one_of: Vec<&'static [&'static str]>,
    pub(crate) required_if: Vec<(&'static str, &'static str, &'static [&'static str])>,
}

impl Spec {
    /// A spec for the module of that name; check mode is supported unless [`Spec::no_check_mode`].
    pub fn new(module: &'static str) -> Spec {
        Spec {
            module,
            options: Vec::new(),
            supports_check_mode: true,
            mutually_exclusive: Vec::new(),
            required_one_of: Vec::new(),
            required_if: Vec::new(),
        }
    }

    /// Adds an option.
    pub fn opt(mut self, opt: Opt) -> Spec {
        self.options.push(opt);
        self
    }

    /// Adds several options, such as a shared set (cloud connection options).
    pub fn opts(mut self, opts: impl IntoIterator<Item = Opt>) -> Spec {
        self.options.extend(opts);
        self
    }

    /// Drops options (a shared set that one module only partly needs).
    pub fn without(mut self, names: &[&str]) -> Spec {
        self.options.retain(|o| !names.contains(&o.name));
        self
    }

    /// The module cannot predict its changes: in check mode it returns `skipped` and does nothing.
    pub fn no_check_mode(mut self) -> Spec {
        self.supports_check_mode = false;
        self
    }

    /// At most one of these options may be given.
    pub fn mutually_exclusive(mut self, names: &'static [&'static str]) -> Spec {
        self.mutually_exclusive.push(names);
        self
    }

    /// At least one of these options must be given.
    pub fn required_one_of(mut self, names: &'static [&'static str]) -> Spec {
        self.required_one_of.push(names);
        self
    }

    /// When option `name` equals `value`, all of `required` must be given.
    pub fn required_if(
        mut self,
        name: &'static str,
        value: &'static str,
        required: &'static [&'static str],
    ) -> Spec {
        self.required_if.push((name, value, required));
        self
    }

    /// The module's name.
    pub fn module(&self) -> &'static str {
        self.module
    }

    pub(crate) fn find(&self, key: &str) -> Option<&Opt> {
        self.options
            .iter()
            .find(|o| o.name == key || o.aliases.contains(&key))
    }

    /// Every accepted name, aliases in parentheses, sorted: the list an error about an unknown option
    /// shows.
    pub(crate) fn supported(&self) -> String {
        let mut names: Vec<String> = self
            .options
            .iter()
            .map(|o| {
                if o.aliases.is_empty() {
                    o.name.to_string()
                } else {
                    format!("{} ({})", o.name, o.aliases.join(", "))
                }
            })
            .collect();
        names.sort();
        names.join(", ")
    }

    /// The spec as JSON, in the shape of a sidecar doc's `options`, so tests can hold the docs and the
    /// code to each other.
    pub fn to_json(&self) -> Value {
        let mut options = serde_json::Map::new();
        for o in &self.options {
            let mut d = serde_json::Map::new();
            d.insert("type".into(), Value::from(type_name(o.ty)));
            d.insert("required".into(), Value::from(o.required));
            if let Some(def) = &o.default {
                d.insert("default".into(), def.clone());
            }
            if !o.aliases.is_empty() {
                d.insert("aliases".into(), Value::from(o.aliases.to_vec()));
            }
            if !o.choices.is_empty() {
                d.insert("choices".into(), Value::from(o.choices.to_vec()));
            }
            if let Some(e) = o.elements {
                d.insert("elements".into(), Value::from(type_name(e)));
            }
            if o.secret.is_some() {
                d.insert("no_log".into(), Value::from(true));
            }
            options.insert(o.name.into(), Value::Object(d));
        }
        serde_json::json!({
            "module": self.module,
            "supports_check_mode": self.supports_check_mode,
            "options": options,
        })
    }
}

fn type_name(t: Type) -> &'static str {
    match t {
        Type::Str => "str",
        Type::Bool => "bool",
        Type::Int => "int",
        Type::Float => "float",
        Type::Path => "path",
        Type::List => "list",
        Type::Dict => "dict",
        Type::Raw => "raw",
    }
}
