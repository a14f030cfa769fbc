use super::*;

/// A policy directory with a fake `filter.wasm` next to it.
fn dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("f.wasm"), b"\0asm").unwrap();
    d
}

fn parse(text: &str) -> Result<Policy, PolicyError> {
    let d = dir();
    let p = d.path().join("p.toml");
    std::fs::write(&p, text).unwrap();
    Policy::load(&p)
}

#[test]
fn full_policy_parses_in_order() {
    let p = parse(
        "filter = \"f.wasm\"\nhook = \"netfilter\"\niface = \"eth0\"\nfuel = 500\nmemory_limit = 131072\non_fault = \"drop\"\n\
         [params]\nrate = 10\nports = [23, 2323]\nallow = [\"10.0.0.0/8\"]\nverbose = true\nname = \"x\"\n",
    )
    .unwrap();
    assert_eq!(p.hook, Hook::Netfilter);
    assert_eq!(p.ifaces, ["eth0"]);
    let many = parse("filter = \"f.wasm\"\niface = [\"eth0\", \"eth1\"]\n").unwrap();
    assert_eq!(many.ifaces, ["eth0", "eth1"]);
    assert_eq!((p.fuel, p.memory_limit, p.on_fault), (500, 131072, Verdict::Drop));
    assert_eq!(
        String::from_utf8(p.config_bytes()).unwrap(),
        "rate=10\nports=23,2323\nallow=10.0.0.0/8\nverbose=true\nname=x\n"
    );
    assert_eq!(p.param_line("ports"), Some(9));
}

#[test]
fn defaults_apply() {
    let p = parse("filter = \"f.wasm\"\n").unwrap();
    assert_eq!(
        (p.hook, p.fuel, p.memory_limit, p.on_fault),
        (Hook::Xdp, DEFAULT_FUEL, DEFAULT_MEMORY_LIMIT, Verdict::Pass)
    );
    assert!(p.config_bytes().is_empty());
}

fn error(text: &str) -> String {
    let e = parse(text).unwrap_err();
    let s = e.to_string();
    assert!(!s.contains('\n'), "error must be one line: {s}");
    s
}

#[test]
fn unknown_key_names_line_and_key() {
    let e = error("filter = \"f.wasm\"\nfuel = 10\nfule = 3\n");
    assert!(e.contains("p.toml:3:"), "{e}");
    assert!(e.contains("key 'fule'"), "{e}");
    assert!(e.contains("unknown field"), "{e}");
}

#[test]
fn wrong_type_names_line_and_key() {
    let e = error("filter = \"f.wasm\"\nfuel = \"lots\"\n");
    assert!(e.contains("p.toml:2: key 'fuel'"), "{e}");
    let e = error("filter = \"f.wasm\"\nhook = \"tc\"\n");
    assert!(e.contains("p.toml:2: key 'hook'"), "{e}");
    let e = error("filter = \"f.wasm\"\non_fault = \"maybe\"\n");
    assert!(e.contains("p.toml:2: key 'on_fault'"), "{e}");
}

#[test]
fn bad_values_are_refused() {
    assert!(error("filter = \"f.wasm\"\nfuel = 0\n").contains(":2: key 'fuel': 0 is out of range"));
    assert!(error("filter = \"f.wasm\"\nmemory_limit = 1000\n").contains(":2: key 'memory_limit'"));
    assert!(error("filter = \"f.wasm\"\niface = \"a/b\"\n").contains(":2: key 'iface'"));
    assert!(error("filter = \"f.wasm\"\niface = []\n").contains(":2: key 'iface'"));
    assert!(error("filter = \"f.wasm\"\niface = [\"a\", \"a\"]\n").contains("named twice"));
    assert!(error("filter = \"f.wasm\"\niface = [\"a\", \"b/c\"]\n").contains("not a valid interface name"));
    assert!(error("filter = \"f.wasm\"\n[params]\nx = { a = 1 }\n").contains(":3: key 'params.x'"));
    assert!(error("filter = \"f.wasm\"\n[params]\nx = [\"a,b\"]\n").contains(":3: key 'params.x'"));
    assert!(error("fuel = 1\n").contains("missing field `filter`"));
    assert!(error("filter = \"f.wasm\"\nfuel = \n").contains("p.toml:2"));
}

#[test]
fn missing_filter_is_reported() {
    let e = error("filter = \"nope.wasm\"\n");
    assert!(e.contains(":1: key 'filter'") && e.contains("does not exist"), "{e}");
    let e = error("filter = \"no_such_filter\"\n");
    assert!(e.contains("filter 'no_such_filter' not found"), "{e}");
}

#[test]
fn filter_name_found_in_search_path() {
    let d = dir();
    std::fs::create_dir_all(d.path().join("target/filters")).unwrap();
    std::fs::write(d.path().join("target/filters/icmp_drop.wasm"), b"\0asm").unwrap();
    std::fs::create_dir(d.path().join("policies")).unwrap();
    let p = d.path().join("policies/x.toml");
    std::fs::write(&p, "filter = \"icmp_drop\"\n").unwrap();
    let pol = Policy::load(&p).unwrap();
    assert_eq!(pol.wasm, d.path().join("target/filters/icmp_drop.wasm"));
}

#[test]
fn mode_is_enforce_unless_audit() {
    assert_eq!(parse("filter = \"f.wasm\"\n").unwrap().mode, Mode::Enforce);
    assert_eq!(parse("filter = \"f.wasm\"\nmode = \"audit\"\n").unwrap().mode, Mode::Audit);
    assert_eq!(parse("filter = \"f.wasm\"\nmode = \"enforce\"\n").unwrap().mode, Mode::Enforce);
    let e = error("filter = \"f.wasm\"\nmode = \"dry\"\n");
    assert!(e.contains("p.toml:2: key 'mode'"), "{e}");
}
