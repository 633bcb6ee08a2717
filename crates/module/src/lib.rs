/*!
Ansible's binary-module protocol, for modules written in Rust.

Ansible runs a binary module as `module ARGS_FILE`, where the file holds the task's options exactly as
written plus `_ansible_*` settings, and reads one JSON object from the module's stdout. The controller
validates nothing for binary modules, so this crate does what `AnsibleModule` does for Python ones:

- a [`Spec`] of [`Opt`]s declares types, defaults, aliases, choices, required options, relations
  between options, and which options are secret;
- the arguments are checked against it: an unknown option or a value of the wrong type fails with a
  message naming the option and listing the valid ones; values are coerced as Ansible users expect
  (`"yes"` is true, `"5"` is 5);
- secrets are masked (`********`) everywhere in the output, error messages included;
- `_ansible_check_mode` is honoured: a module whose spec says it cannot support check mode returns
  `skipped` without running; `_ansible_diff` keeps or drops the diff; `invocation` is added only when
  `_ansible_inject_invocation` is true;
- a panic becomes a `failed: true` result; every failure exits non-zero; exactly one JSON object is
  printed on stdout (anything else written there while the module runs is diverted to stderr).

A module's `main` is a few lines:

```no_run
use osm_module::{run, Failure, Opt, Outcome, Spec, Type};

#[derive(serde::Deserialize)]
struct Options { name: String, count: i64 }

fn main() -> std::process::ExitCode {
    let spec = Spec::new("hello")
        .opt(Opt::new("name", Type::Str).required())
        .opt(Opt::new("count", Type::Int).default(1));
    run(&spec, |ctx| {
        let o: Options = ctx.options()?;
        Ok(Outcome::changed(false).with("greeting", format!("hello {} x{}", o.name, o.count)))
    })
}
```
*/
#![deny(missing_docs)]

mod args;
mod mask;
mod runtime;
mod spec;

pub use crate::args::{coerce_bool, parse, ArgError, Internal, Params};
pub use crate::mask::{Secrets, MASK};
pub use crate::runtime::{execute, run, Ctx, Failure, Outcome};
pub use crate::spec::{Opt, Spec, Type};
