//! The conversion hosts' keypair. Nova keypairs belong to the user and carry no description: the
//! mark is the public key itself, which only the holder of the local private key has.

use super::{ignore_gone, ConversionError, Ctx};

fn public(c: &Ctx) -> Option<String> {
    c.s.public_key
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
}

/// The keypair of the local public key, created when missing; one of that name with another key is
/// an error (it is not osm's to replace).
pub(super) fn ensure(c: &mut Ctx) -> Result<(), ConversionError> {
    let name = c.s.keypair_name.clone();
    let Some(public) = public(c) else {
        return Err(c.invalid("no public key for the conversion keypair"));
    };
    match c.conn.compute().find_keypair(&name).map_err(c.err(format!("looking up keypair {name}")))? {
        Some(k) if same_key(&k.public_key, &public) => Ok(()),
        Some(_) => Err(c.invalid(format!(
            "keypair '{name}' exists with another public key than the local one; delete it or point os_migrate_conversion_keypair_private_path at its private key"
        ))),
        None => {
            if !c.check {
                c.conn.compute().create_keypair(&name, &public, None).map_err(c.err(format!("creating keypair {name}")))?;
            }
            c.changed(format!("keypair {name}"));
            Ok(())
        }
    }
}

/// Deletes the keypair when it holds the local public key; one with another key, or with no local
/// key to compare, is left alone.
pub(super) fn remove(c: &mut Ctx) -> Result<(), ConversionError> {
    let name = c.s.keypair_name.clone();
    let Some(k) = c
        .conn
        .compute()
        .find_keypair(&name)
        .map_err(c.err("looking up the keypair"))?
    else {
        return Ok(());
    };
    match public(c) {
        Some(p) if same_key(&k.public_key, &p) => {
            c.changed(format!("keypair {name}"));
            if !c.check {
                ignore_gone(c.conn.compute().delete_keypair(&name))
                    .map_err(c.err("deleting the keypair"))?;
            }
        }
        Some(_) => c.kept(format!(
            "keypair {name}: it holds another public key than the local one"
        )),
        None => c.kept(format!(
            "keypair {name}: no local public key to prove it is osm's"
        )),
    }
    Ok(())
}

fn same_key(a: &str, b: &str) -> bool {
    let body = |k: &str| k.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    body(a) == body(b)
}
