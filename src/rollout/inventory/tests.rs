//! Each format's parsing and validation, one `check` per case.

use super::*;

/// name, address, port, user, groups.
type Want<'a> = (&'a str, &'a str, Option<u16>, Option<&'a str>, &'a [&'a str]);
type Got = (String, String, Option<u16>, Option<String>, Vec<String>);

fn check(text: &str, expected: Result<(Format, &[Want]), &str>) {
    match (Inventory::parse(text, "inv"), expected) {
        (Ok((inv, fmt)), Ok((want_fmt, want))) => {
            assert_eq!(fmt, want_fmt, "{text}");
            let got: Vec<Got> = inv.hosts.iter().map(|h| (h.name.clone(), h.address.clone(), h.port, h.user.clone(), h.groups.clone())).collect();
            let want: Vec<Got> = want.iter().map(|(n, a, p, u, g)| (n.to_string(), a.to_string(), *p, u.map(str::to_string), g.iter().map(|s| s.to_string()).collect())).collect();
            assert_eq!(got, want, "{text}");
        }
        (Err(e), Err(frag)) => assert!(e.to_string().contains(frag), "{text}: {e}"),
        (got, want) => panic!("{text}: got {got:?}, want {:?}", want.map(|w| w.0)),
    }
}

#[test]
fn our_yaml_with_defaults() {
    check(
        "defaults: {user: root, port: 2222}\nhosts:\n  - {name: web-1, address: 10.0.0.1, groups: [web], labels: {role: web}}\n  - {name: db-1, address: db1.example.com, port: 22, user: admin}\n",
        Ok((Format::Semantos, &[("web-1", "10.0.0.1", Some(2222), Some("root"), &["web"]), ("db-1", "db1.example.com", Some(22), Some("admin"), &[])])),
    );
    check("hosts:\n  - {name: a, colour: red}\n", Err("unknown field `colour`"));
}

#[test]
fn ansible_yaml_with_children_and_var_precedence() {
    let text = "all:\n  vars: {ansible_user: deploy, ansible_port: 22}\n  hosts:\n    lb1: {ansible_host: 10.0.0.9}\n  children:\n    web:\n      vars: {ansible_port: 2200}\n      hosts:\n        web[1:2]:\n        web3: {ansible_host: 10.0.0.3, ansible_port: 2203, role: front}\n";
    check(
        text,
        Ok((Format::AnsibleYaml, &[("lb1", "10.0.0.9", Some(22), Some("deploy"), &[]), ("web1", "web1", Some(2200), Some("deploy"), &["web"]), ("web2", "web2", Some(2200), Some("deploy"), &["web"]), ("web3", "10.0.0.3", Some(2203), Some("deploy"), &["web"])])),
    );
    let (inv, _) = Inventory::parse(text, "inv").unwrap();
    assert_eq!(inv.hosts[3].labels.get("role").map(String::as_str), Some("front"));
}

#[test]
fn ansible_ini_with_sections_ranges_and_quotes() {
    let text = "# fleet\nbastion ansible_host=10.1.0.1\n\n[web]\nweb[01:03] ansible_user='ops'\n\n[db]\ndb-a ansible_host=\"10.1.0.20\" ansible_port=5022\n\n[prod:children]\nweb\ndb\n\n[prod:vars]\nansible_user=root\n\n[web:vars]\nansible_port=2222\n";
    check(
        text,
        Ok((
            Format::AnsibleIni,
            &[
                ("bastion", "10.1.0.1", None, None, &[]),
                ("web01", "web01", Some(2222), Some("ops"), &["prod", "web"]),
                ("web02", "web02", Some(2222), Some("ops"), &["prod", "web"]),
                ("web03", "web03", Some(2222), Some("ops"), &["prod", "web"]),
                ("db-a", "10.1.0.20", Some(5022), Some("root"), &["db", "prod"]),
            ],
        )),
    );
}

#[test]
fn hostile_or_broken_entries_name_the_host_and_field() {
    check("hosts:\n  - {name: a, address: '-oProxyCommand=touch /tmp/pwned'}\n", Err("host \"a\": address \"-oProxyCommand=touch /tmp/pwned\" is invalid"));
    check("hosts:\n  - {name: a, address: 10.0.0.1, user: 'root; reboot'}\n", Err("user \"root; reboot\" is invalid"));
    check("hosts:\n  - {name: '$(reboot)', address: 10.0.0.1}\n", Err("host name \"$(reboot)\" is invalid"));
    check("hosts:\n  - {name: a, address: 10.0.0.1}\n  - {name: a, address: 10.0.0.2}\n", Err("listed twice"));
    check("hosts: []\n", Err("no host"));
    check("[web\nh1\n", Err("line 1"));
    check("h1 ansible_port=http\n", Err("ansible_port \"http\" is not a port"));
    check("hosts:\n  - {name: v6, address: '[fe80::1]'}\n", Ok((Format::Semantos, &[("v6", "[fe80::1]", None, None, &[])])));
}

#[test]
fn limit_and_canary_order() {
    let (inv, _) = Inventory::parse("hosts:\n  - {name: a, groups: [web]}\n  - {name: b, labels: {canary: 'true'}}\n  - {name: c, groups: [db]}\n", "inv").unwrap();
    let names = |hs: Vec<Host>| hs.into_iter().map(|h| h.name).collect::<Vec<_>>();
    assert_eq!(names(inv.select(&[]).unwrap()), ["b", "a", "c"]);
    assert_eq!(names(inv.select(&["web".into(), "c".into()]).unwrap()), ["a", "c"]);
    assert_eq!(names(inv.select(&["canary=true".into()]).unwrap()), ["b"]);
    assert!(inv.select(&["nope".into()]).unwrap_err().contains("selects no host"));
}

#[test]
fn nested_host_ranges_are_refused_before_they_expand() {
    let t0 = std::time::Instant::now();
    // 99³ = 970299 names from one line: refused by counting, not by running out of memory.
    check("[web]\nweb[01:99][01:99][01:99].example.com\n", Err("inv: line 2: host pattern \"web[01:99][01:99][01:99].example.com\" expands to 970299 hosts, which with the 0 before it passes the limit of 100000 hosts per inventory"));
    // The limit is per inventory: lines that fit alone add up.
    check("[a]\na[0:99][0:599]\n[b]\nb[0:99][0:599]\n", Err("line 4: host pattern \"b[0:99][0:599]\" expands to 60000 hosts, which with the 60000 before it passes the limit"));
    // Ansible YAML ranges count the same way.
    check("all:\n  children:\n    web:\n      hosts:\n        web[0:99][0:99][0:99]:\n", Err("group \"web\": host pattern \"web[0:99][0:99][0:99]\" expands to 1000000 hosts"));
    assert!(t0.elapsed() < std::time::Duration::from_secs(2), "took {:?}: the ranges were expanded", t0.elapsed());
    // Within the limit a range still expands.
    let (inv, _) = Inventory::parse("[web]\nweb[1:3][a:b]\n", "inv").unwrap();
    assert_eq!(inv.hosts.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["web1a", "web1b", "web2a", "web2b", "web3a", "web3b"]);
}

#[test]
fn group_depth_of_a_layered_ini_inventory_is_not_exponential() {
    // 24 layers of two groups, each a child of both groups of the layer above: 2^24 paths to the
    // bottom. A group var on the bottom layer makes the parser compute its depth.
    let mut text = String::from("[g0a]\nh1\n");
    for i in 0..24 {
        for side in ["a", "b"] {
            text.push_str(&format!("[g{i}{side}:children]\ng{}a\ng{}b\n", i + 1, i + 1));
        }
    }
    text.push_str("[g24a:vars]\nrole=deep\n");
    let t0 = std::time::Instant::now();
    let (inv, _) = Inventory::parse(&text, "inv").unwrap();
    assert!(t0.elapsed() < std::time::Duration::from_secs(2), "took {:?}", t0.elapsed());
    assert_eq!(inv.hosts.len(), 1);
}

#[test]
fn ini_host_line_of_empty_quotes_is_an_error_not_a_panic() {
    // Found by benches/fuzz.rs: `""` split into no word and the parser's expect() panicked.
    check("[web]\n\"\"\n", Err("inv: line 2: \"\\\"\\\"\" names no host"));
    check("''\n", Err("line 1"));
}

#[test]
fn group_that_is_its_own_descendant_is_refused() {
    check("[a:children]\nb\n[b:children]\na\n[a]\nh1\n", Err("inv: group \"a\" is its own descendant (a → b → a)"));
    check("[a:children]\na\n[a]\nh1\n", Err("group \"a\" is its own descendant (a → a)"));
    check("all:\n  children:\n    a:\n      children:\n        b:\n          children:\n            a: {}\n      hosts:\n        h1: {}\n", Err("is its own descendant"));
    // A diamond (two parents share a child) is not a cycle.
    check("[p:children]\na\nb\n[a:children]\nc\n[b:children]\nc\n[c]\nh1\n", Ok((Format::AnsibleIni, &[("h1", "h1", None, None, &["a", "b", "c", "p"])])));
}
