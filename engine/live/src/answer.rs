//! Reading a service's JSON answer (Kaspi's, Proxy6's) into a typed struct. A field the code
//! relies on that is missing or of another type is an error naming the answer and the field's
//! place in it (``orders: data[0].attributes: missing field `creationDate` ``), never a default:
//! a missing `total` is not 0, a missing page count is not 1. Fields the code can do without are
//! `Option`s in the structs, so their absence is a decision written in the type.

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

/// Reads `body` as `T`; the error names `what` (the endpoint) and the field.
pub fn read<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, String> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let said = inner.to_string();
        // serde_json ends its messages with the position; the path says more.
        let said = said.rsplit_once(" at line ").map_or(said.as_str(), |(m, _)| m);
        if inner.is_syntax() || inner.is_eof() {
            format!("{what}: the answer is not JSON ({said})")
        } else if path == "." {
            format!("{what}: {said}")
        } else {
            format!("{what}: {path}: {said}")
        }
    })
}

/// A value the service sends as a string or as a number (Proxy6's ids and ports, Kaspi's
/// merchant ids and order codes), kept as its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(pub String);

impl<'de> serde::Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A number the service may send as a string (Proxy6: `"balance": "48.80"`, `"unixtime_end":
/// "1468349441"` in some answers); a string that is not a finite number is an error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Num(pub f64);

impl<'de> serde::Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Num;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number, or a string holding one")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Num, E> {
                match v.trim().parse::<f64>() {
                    Ok(n) if n.is_finite() => Ok(Num(n)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
                Ok(Num(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
                Ok(Num(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Num, E> {
                Ok(Num(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// A list the service sends as an array, or as an object keyed by id (Proxy6's `list` without
/// `nokey`); the values, in the order sent.
#[derive(Debug, Clone, PartialEq)]
pub struct List<T>(pub Vec<T>);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = List<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array, or an object keyed by id")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<List<T>, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element()? {
                    out.push(item);
                }
                Ok(List(out))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<List<T>, A::Error> {
                let mut out = Vec::new();
                while let Some((_, item)) = map.next_entry::<de::IgnoredAny, T>()? {
                    out.push(item);
                }
                Ok(List(out))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl Num {
    /// The value as a whole non-negative count (a fraction is dropped, a negative is 0).
    #[must_use]
    pub fn whole(self) -> u64 {
        self.0.max(0.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Page {
        total: u64,
        rows: Vec<Row>,
    }

    #[derive(Debug, serde::Deserialize)]
    struct Row {
        id: Text,
        price: Num,
        note: Option<String>,
    }

    #[test]
    fn a_missing_or_mistyped_field_is_named_with_its_place() {
        let ok: Page =
            read(br#"{"total": 2, "rows": [{"id": 7, "price": "1.5"}, {"id": "x", "price": 2}]}"#, "t")
                .unwrap();
        assert_eq!((ok.total, ok.rows[0].id.0.as_str(), ok.rows[0].price.0), (2, "7", 1.5));
        assert_eq!((ok.rows[1].id.0.as_str(), ok.rows[1].note.as_deref()), ("x", None));
        let e = read::<Page>(br#"{"rows": []}"#, "offers").unwrap_err();
        assert_eq!(e, "offers: missing field `total`");
        let e = read::<Page>(br#"{"total": 1, "rows": [{"id": 1, "price": 1}, {"id": 2}]}"#, "offers")
            .unwrap_err();
        assert_eq!(e, "offers: rows[1]: missing field `price`");
        let e = read::<Page>(br#"{"total": "two", "rows": []}"#, "offers").unwrap_err();
        assert_eq!(e, "offers: total: invalid type: string \"two\", expected u64");
        let e =
            read::<Page>(br#"{"total": 1, "rows": [{"id": 1, "price": "cheap"}]}"#, "offers").unwrap_err();
        assert_eq!(
            e,
            "offers: rows[0].price: invalid value: string \"cheap\", expected a number, or a string holding one"
        );
        let e = read::<Page>(b"<html>", "offers").unwrap_err();
        assert!(e.starts_with("offers: the answer is not JSON"), "{e}");
        // A list as an array or keyed by id; an item's field is named inside either.
        let keyed: List<Row> =
            read(br#"{"11": {"id": "11", "price": 1}, "12": {"id": 12, "price": 2}}"#, "l").unwrap();
        assert_eq!(keyed.0.iter().map(|r| r.id.0.as_str()).collect::<Vec<_>>(), ["11", "12"]);
        let array: List<Row> = read(br#"[{"id": 1, "price": 1}]"#, "l").unwrap();
        assert_eq!(array.0.len(), 1);
        let e = read::<List<Row>>(br#"{"11": {"id": "11"}}"#, "getproxy").unwrap_err();
        assert_eq!(e, "getproxy: 11: missing field `price`");
        let e = read::<List<Row>>(br#""none""#, "getproxy").unwrap_err();
        assert_eq!(e, "getproxy: invalid type: string \"none\", expected an array, or an object keyed by id");
        let e = read::<Page>(b"<html>", "offers").unwrap_err();
        assert!(e.starts_with("offers: the answer is not JSON"), "{e}");
    }
}
