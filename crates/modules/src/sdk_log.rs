//! openstack.cloud's `sdk_log_path` and `sdk_log_level`: the API requests of a module, appended to a
//! file. `INFO` writes one line per request (method, URL, status, time, request id); `DEBUG` adds
//! the JSON request body. Secrets never reach the file: the Keystone auth request is never logged
//! whole, secret-looking keys of a body are masked, and so is every credential of the connection.

use std::io::Write;
use std::path::PathBuf;

use osm_module::{Failure, Secrets, Spec, MASK};
use osm_openstack::{RequestLog, RequestRecord};
use serde_json::{Map, Value};

/// The log settings of a connection mapping; `None` when it asks for no log.
pub(crate) fn request_log(conn: &Map<String, Value>) -> Result<Option<RequestLog>, Failure> {
    let Some(path) = conn.get("sdk_log_path").and_then(Value::as_str) else {
        return Ok(None);
    };
    let debug = match conn
        .get("sdk_log_level")
        .and_then(Value::as_str)
        .unwrap_or("INFO")
    {
        "INFO" => false,
        "DEBUG" => true,
        other => {
            return Err(Failure::new(format!(
                "option 'sdk_log_level' must be INFO or DEBUG, got {other:?}"
            )))
        }
    };
    let path = PathBuf::from(path);
    // Opened now, so that a path that cannot be written fails the task before any request.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| {
            Failure::new(format!(
                "option 'sdk_log_path': cannot write {}: {e}",
                path.display()
            ))
        })?;
    let secrets = Secrets::from_raw(&Spec::new("sdk_log"), conn);
    Ok(Some(Box::new(move |r: &RequestRecord<'_>| {
        let line = secrets.mask_str(&format_record(r, debug));
        // A log that stops being writable must not fail the migration it describes.
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&path) {
            let _ = f.write_all(line.as_bytes());
        }
    })))
}

fn format_record(r: &RequestRecord<'_>, debug: bool) -> String {
    let outcome = match (r.status, &r.error) {
        (Some(status), _) => status.to_string(),
        (None, Some(e)) => format!("no answer: {e}"),
        (None, None) => "no answer".to_string(),
    };
    let mut line = format!(
        "{} {} {} -> {outcome} in {:.3} s",
        osm_workload::state::now(),
        r.method,
        r.url,
        r.elapsed.as_secs_f64()
    );
    if let Some(id) = &r.request_id {
        line.push_str(&format!(" ({id})"));
    }
    line.push('\n');
    if let (true, Some(body)) = (debug, r.body) {
        let shown = match serde_json::from_slice::<Value>(body) {
            Ok(mut v) => {
                redact(&mut v);
                v.to_string()
            }
            Err(_) => format!("({} bytes, not JSON)", body.len()),
        };
        line.push_str(&format!("  body: {shown}\n"));
    }
    line
}

/// Masks the values of keys that hold secrets in OpenStack request bodies (`password`,
/// `adminPass`, `application_credential_secret`, tokens, `user_data`, private keys).
fn redact(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, item) in m.iter_mut() {
                let k = k.to_ascii_lowercase();
                if ["pass", "secret", "token", "private_key", "user_data"]
                    .iter()
                    .any(|s| k.contains(s))
                {
                    *item = Value::String(MASK.into());
                } else {
                    redact(item);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn debug_lines_mask_secret_keys_and_info_lines_have_no_body() {
        let body =
            json!({"server": {"name": "a", "adminPass": "hunter2", "user_data": "c2VjcmV0"}})
                .to_string();
        let r = RequestRecord {
            method: "POST",
            url: "https://nova/v2.1/servers",
            status: Some(202),
            elapsed: Duration::from_millis(42),
            request_id: Some("req-1".into()),
            body: Some(body.as_bytes()),
            error: None,
        };
        let debug = format_record(&r, true);
        assert!(
            debug.contains("POST https://nova/v2.1/servers -> 202 in 0.042 s (req-1)"),
            "{debug}"
        );
        assert!(
            debug.contains("\"name\":\"a\"")
                && !debug.contains("hunter2")
                && !debug.contains("c2VjcmV0"),
            "{debug}"
        );
        assert!(!format_record(&r, false).contains("body"));
    }

    #[test]
    fn credentials_of_the_connection_are_masked_everywhere() {
        let dir = std::env::temp_dir().join(format!("osm-sdk-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sdk.log");
        let conn =
            json!({"auth": {"password": "s3cr3t"}, "sdk_log_path": path, "sdk_log_level": "DEBUG"});
        let log = request_log(conn.as_object().unwrap()).unwrap().unwrap();
        log(&RequestRecord {
            method: "GET",
            url: "https://x/servers?name=s3cr3t",
            status: None,
            elapsed: Duration::ZERO,
            request_id: None,
            body: None,
            error: Some("refused".into()),
        });
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            text.contains("GET https://x/servers?name=******** -> no answer: refused"),
            "{text}"
        );
    }
}
