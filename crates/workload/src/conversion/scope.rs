//! Where a conversion host's resources are looked for, and how osm knows it made one.

use osm_openstack::Query;

/// The start of the mark osm leaves on what it creates for a conversion host.
const MARK_PREFIX: &str = "osm conversion host";
/// The longest description Neutron keeps (and Nova a metadata value).
const MAX_MARK: usize = 255;

/// The project of the connection and the mark of one conversion host.
#[derive(Debug, Clone)]
pub(super) struct Scope {
    /// The project every lookup stays in.
    pub project: String,
    /// `osm conversion host <name>`: the description of every Neutron resource deploy creates for
    /// the host (and the value of the server's `osm_conversion_host` metadata, without the prefix).
    pub mark: String,
    /// The host's name as the server metadata carries it.
    pub host: String,
}

/// The server metadata key that marks a conversion host osm created.
pub(super) const SERVER_MARK_KEY: &str = "osm_conversion_host";

impl Scope {
    pub fn new(project: String, host: &str) -> Scope {
        Scope {
            project,
            mark: truncated(format!("{MARK_PREFIX} {host}")),
            host: truncated(host.to_string()),
        }
    }

    /// Resources named `name` in this project.
    pub fn named(&self, name: &str) -> Query {
        Query::new()
            .with("name", name)
            .with("project_id", self.project.clone())
    }

    /// Whether a resource is in this project (checked again here: a cloud may ignore a filter).
    pub fn holds(&self, project_id: Option<&str>) -> bool {
        project_id == Some(self.project.as_str())
    }

    /// Whether osm made this resource for this host: in this project, carrying the mark.
    pub fn made(&self, project_id: Option<&str>, description: Option<&str>) -> bool {
        self.holds(project_id) && description == Some(self.mark.as_str())
    }

    /// The description deploy gives what it creates.
    pub fn description(&self) -> Option<String> {
        Some(self.mark.clone())
    }
}

fn truncated(mut s: String) -> String {
    if s.len() > MAX_MARK {
        let mut end = MAX_MARK;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_means_this_project_and_this_host() {
        let s = Scope::new("p1".into(), "conv-src");
        assert_eq!(s.mark, "osm conversion host conv-src");
        assert!(s.made(Some("p1"), Some("osm conversion host conv-src")));
        assert!(
            !s.made(Some("p2"), Some("osm conversion host conv-src")),
            "another project"
        );
        assert!(
            !s.made(Some("p1"), Some("osm conversion host conv-dst")),
            "another host"
        );
        assert!(!s.made(Some("p1"), None), "no mark");
        assert!(!s.made(None, Some("osm conversion host conv-src")));
        assert_eq!(
            s.named("n").pairs(),
            &[
                ("name".to_string(), "n".to_string()),
                ("project_id".to_string(), "p1".to_string())
            ]
        );
    }

    #[test]
    fn long_names_make_marks_neutron_keeps() {
        let s = Scope::new("p".into(), &"é".repeat(300));
        assert!(s.mark.len() <= MAX_MARK && s.host.len() <= MAX_MARK);
        assert!(s.mark.starts_with(MARK_PREFIX));
    }
}
