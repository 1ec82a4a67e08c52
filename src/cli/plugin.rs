//! The same binary as the kubectl plugin `kubectl dc`: kubectl runs a plugin by the file
//! name `kubectl-dc` found on PATH, so that name makes help and usage say `kubectl dc`.

use std::ffi::OsStr;

use clap::{CommandFactory, FromArgMatches};

use super::Cli;

/// The file name kubectl looks for on PATH for `kubectl dc`.
pub const PLUGIN_FILE: &str = "kubectl-dc";

/// How the binary names itself in help and usage, from the path it was run by (`argv[0]`):
/// `kubectl dc` under the plugin's file name (`.exe` aside), else `dc-operator`.
pub fn display_name(argv0: Option<&OsStr>) -> &'static str {
    let path = argv0.map(OsStr::to_string_lossy).unwrap_or_default();
    // Either separator: the name is judged the same on every system.
    let file = path.rsplit(['/', '\\']).next().unwrap_or_default();
    match file.strip_suffix(".exe").unwrap_or(file) == PLUGIN_FILE {
        true => "kubectl dc",
        false => "dc-operator",
    }
}

/// The command line, parsed under the name the binary was run by; exits as clap does
/// (code 2) on bad input, and prints help or the version on request.
pub fn parse() -> Cli {
    let argv0 = std::env::args_os().next();
    let name = display_name(argv0.as_deref());
    let parsed = Cli::command()
        .name(name)
        .bin_name(name)
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches));
    parsed.unwrap_or_else(|e| super::plan::exit_on_usage_error(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plugin_file_name_makes_it_kubectl_dc() {
        for (argv0, name) in [
            (Some("kubectl-dc"), "kubectl dc"),
            (Some("/usr/local/bin/kubectl-dc"), "kubectl dc"),
            (Some("C:\\bin\\kubectl-dc.exe"), "kubectl dc"),
            (Some("./kubectl-dc.exe"), "kubectl dc"),
            (Some("dc-operator"), "dc-operator"),
            (Some("/dc-operator"), "dc-operator"),
            (Some("kubectl-dcx"), "dc-operator"),
            (Some("kubectl"), "dc-operator"),
            (None, "dc-operator"),
        ] {
            assert_eq!(display_name(argv0.map(OsStr::new)), name, "{argv0:?}");
        }
    }
}
