//! The demper's unit tests: schedules, repricing in whole tenge, the guard, SKU files.

use super::*;

fn sku(floor: f64, ceiling: f64) -> Sku {
    Sku { sku: "A".into(), product_id: "1".into(), floor, ceiling }
}

#[test]
fn spread_passes_give_each_sku_a_stable_slot_in_the_first_four_fifths() {
    let skus: Vec<Sku> = (0..200).map(|i| Sku { sku: format!("S{i}"), ..sku(1.0, 2.0) }).collect();
    let interval = Duration::from_mins(3);
    let a = schedule(rotor_engine::UserId(1), &skus, interval, true);
    assert_eq!(a.len(), 200);
    assert!(a.windows(2).all(|w| w[0].0 <= w[1].0), "in slot order");
    assert!(a.iter().all(|&(slot, _)| slot < Duration::from_millis(144_000)));
    assert!(a.last().unwrap().0 > Duration::from_mins(2), "spread to the window's end");
    assert_eq!(a, schedule(rotor_engine::UserId(1), &skus, interval, true), "the same every pass");
    let other = schedule(rotor_engine::UserId(2), &skus, interval, true);
    assert_ne!(a, other, "another seller interleaves");
    // The slot follows the SKU, not its place in the file.
    let mut reversed = skus.clone();
    reversed.reverse();
    let b = schedule(rotor_engine::UserId(1), &reversed, interval, true);
    let slot_of = |order: &[(Duration, usize)], list: &[Sku], name: &str| {
        order.iter().find(|&&(_, i)| list[i].sku == name).unwrap().0
    };
    assert_eq!(slot_of(&a, &skus, "S7"), slot_of(&b, &reversed, "S7"));
    // Unspread, every SKU goes at once, in file order.
    let burst = schedule(rotor_engine::UserId(1), &skus, interval, false);
    assert!(burst.iter().enumerate().all(|(k, &(slot, i))| slot == Duration::ZERO && i == k));
}

#[test]
fn undercuts_within_floor_and_ceiling() {
    let s = sku(900.0, 1500.0);
    assert_eq!(
        reprice(Some(1200.0), Some(1000.0), &s, 1.0),
        Repricing { price: Some(999.0), reason: "undercut", push: true }
    );
    assert_eq!(
        reprice(Some(1200.0), Some(800.0), &s, 1.0),
        Repricing { price: Some(900.0), reason: "floor", push: true }
    );
    assert_eq!(
        reprice(None, Some(5000.0), &s, 1.0),
        Repricing { price: Some(1500.0), reason: "ceiling", push: true }
    );
    assert_eq!(
        reprice(Some(999.0), Some(1000.0), &s, 1.0),
        Repricing { price: Some(999.0), reason: "unchanged", push: false }
    );
    assert_eq!(
        reprice(Some(1000.0), None, &s, 1.0),
        Repricing { price: Some(1000.0), reason: "no_competitors", push: false }
    );
    assert_eq!(
        reprice(None, Some(1000.5), &s, 0.0),
        Repricing { price: Some(1000.0), reason: "undercut", push: true }
    );
}

#[test]
fn whole_tenge_prices_stay_inside_a_fractional_band() {
    let s = sku(1000.5, 2000.7);
    assert_eq!(s.band(), (1001.0, 2000.0));
    // Undercutting to the floor rounds up to it, never below.
    assert_eq!(
        reprice(Some(1500.0), Some(900.0), &s, 1.0),
        Repricing { price: Some(1001.0), reason: "floor", push: true }
    );
    assert_eq!(
        reprice(Some(1500.0), Some(1001.4), &s, 0.0),
        Repricing { price: Some(1001.0), reason: "undercut", push: true },
        "1001.4 rounds down to 1001, inside"
    );
    assert_eq!(
        reprice(Some(1500.0), Some(9000.0), &s, 1.0),
        Repricing { price: Some(2000.0), reason: "ceiling", push: true }
    );
    // No competitor: a current price outside the band is brought back inside.
    assert_eq!(
        reprice(Some(700.0), None, &s, 1.0),
        Repricing { price: Some(1001.0), reason: "floor", push: true }
    );
    assert_eq!(
        reprice(Some(2500.0), None, &s, 1.0),
        Repricing { price: Some(2000.0), reason: "ceiling", push: true }
    );
    assert_eq!(
        reprice(Some(1500.0), None, &s, 1.0),
        Repricing { price: Some(1500.0), reason: "no_competitors", push: false }
    );
    assert_eq!(
        reprice(None, None, &s, 1.0),
        Repricing { price: None, reason: "no_competitors", push: false }
    );
}

#[test]
fn the_guard_holds_what_goes_beyond_its_share_of_the_reference() {
    assert!(!beyond_guard(1000.0, 700.0, 30), "exactly 30% is allowed");
    assert!(beyond_guard(1000.0, 699.0, 30));
    assert!(!beyond_guard(1000.0, 1.0, 100), "100 never holds");
    assert!(beyond_guard(600_000.0, 84_185.0, 30), "the first start's 86% drop");
    // Ten 5% steps from 1000 together cross 30% at the seventh.
    let mut price = 1000.0_f64;
    let mut steps = 0;
    while !beyond_guard(1000.0, (price * 0.95).floor(), 30) {
        price = (price * 0.95).floor();
        steps += 1;
    }
    assert_eq!(steps, 6);
}

#[test]
fn sku_files_are_checked_with_line_numbers() {
    let dir = std::env::temp_dir().join(format!("rotor-skus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_default();
    let path = dir.join("skus.csv");
    std::fs::write(&path, "sku,product_id,floor,ceiling\nA,100,10,20\nB,101,30,20\n").unwrap_or_default();
    let err = load_skus(&path).unwrap_err().to_string();
    assert!(err.ends_with("skus.csv:3: floor 30 is above ceiling 20"), "{err}");
    std::fs::write(&path, "sku,product,floor,ceiling\n").unwrap_or_default();
    assert!(
        load_skus(&path).unwrap_err().to_string().contains("valid: sku,product_id,floor,ceiling[,model]")
    );
    std::fs::write(&path, "sku,product_id,floor,ceiling,model\nA,100,10,x\n").unwrap_or_default();
    assert!(load_skus(&path).unwrap_err().to_string().contains(":2: ceiling is `x`"));
    std::fs::write(&path, "sku,product_id,floor,ceiling\nA,100,10,20\nB,101,0,20\n").unwrap_or_default();
    let err = load_skus(&path).unwrap_err().to_string();
    assert!(err.ends_with(":3: floor is `0`; valid: a price in tenge, 1 or more"), "{err}");
    std::fs::write(&path, "sku,product_id,floor,ceiling,model\nA,100,10,20,Phone\nB,101,1,2\n")
        .unwrap_or_default();
    let skus = load_skus(&path).unwrap_or_default();
    assert_eq!(skus.len(), 2, "a model column is accepted (and not used: the catalogue's is)");
    std::fs::write(&path, "sku,product_id,floor,ceiling\nA,100,1000.2,1000.8\n").unwrap_or_default();
    let err = load_skus(&path).unwrap_err().to_string();
    assert!(err.ends_with(":2: floor 1000.2 and ceiling 1000.8 hold no whole tenge; prices go out in whole tenge, so give a band that holds one"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
