use super::{Bought, Pages, Proxy6Error};

fn page(ids: &[u32]) -> Vec<(Bought, String)> {
    ids.iter()
        .map(|i| {
            let b = Bought {
                id: i.to_string(),
                host: "10.0.0.1".into(),
                egress: None,
                port: 8000,
                user: "u".into(),
                password: rotor_engine::Secret::new("p"),
                expires_ms: 0,
            };
            (b, String::new())
        })
        .collect()
}

fn ids(p: Pages) -> Result<Vec<String>, Proxy6Error> {
    p.finish().map(|l| l.into_iter().map(|(b, _)| b.id).collect())
}

#[test]
fn a_list_ends_only_on_a_page_with_nothing_new_and_never_short_of_its_count() {
    // Short pages (a provider answering fewer than `limit`), a total count: read to the end.
    let mut p = Pages::default();
    assert!(!p.add(page(&[1, 2]), Some(5)));
    assert!(!p.add(page(&[3, 4]), Some(5)));
    assert!(!p.add(page(&[5]), Some(5)));
    assert!(p.add(page(&[]), Some(5)));
    assert_eq!(ids(p).unwrap(), ["1", "2", "3", "4", "5"]);
    // A count per page: the same list.
    let mut p = Pages::default();
    assert!(!p.add(page(&[1, 2]), Some(2)));
    assert!(!p.add(page(&[3]), Some(1)));
    assert!(p.add(page(&[]), Some(0)));
    assert_eq!(ids(p).unwrap().len(), 3);
    // A provider that ignores `page`: the first page again ends the read, and a count
    // above what was seen makes the list incomplete, not the pool.
    let mut p = Pages::default();
    assert!(!p.add(page(&[1, 2]), Some(5)));
    assert!(p.add(page(&[1, 2]), Some(5)));
    let e = ids(p).unwrap_err();
    assert!(
        matches!(&e, Proxy6Error::Implausible(m) if m.contains("gave 2 proxies while its list_count says 5")),
        "{e}"
    );
    // An empty account is complete.
    let mut p = Pages::default();
    assert!(p.add(page(&[]), Some(0)));
    assert!(ids(p).unwrap().is_empty());
}
