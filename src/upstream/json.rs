//! Reading JSON answers strictly and cheaply: objects where objects are expected, `null`
//! where Jackson writes it, the envelope's failure code without building a value tree, and
//! parser messages that never quote the answer.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A `T` that must come as a JSON object. Serde's derived structs also accept an array of
/// their fields in order, which no Genesys API sends: a hostile answer must not pass as one.
pub(crate) struct Obj<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjVisitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(ObjVisitor(PhantomData))
            .map(Obj)
    }
}

/// Strips [`Obj`] from a list.
pub(crate) fn objects<T>(list: Vec<Obj<T>>) -> Vec<T> {
    list.into_iter().map(|o| o.0).collect()
}

/// `null` reads as the default, as absence does: GWS is a Java service, and Jackson writes
/// an absent list as `null` unless told otherwise.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Why an answer failed the [`probe`].
pub(crate) enum ProbeError {
    NotJson(serde_json::Error),
    /// More objects and arrays than allowed.
    TooManyContainers,
}

/// Walks the whole answer once, without building a value tree, and says whether
/// `status.code` is a number other than 0 (the GWS/Nexus failure signal), and which. Any
/// JSON passes; of repeated members the last counts. It refuses an answer of more than
/// `max_containers` objects and arrays: each one costs a struct or a map node once decoded
/// (up to some 650 bytes for a 7-byte `{"a":0}`), so their number, not the body's size,
/// bounds what decoding costs. Values are skipped through `deserialize_any`, so serde_json's
/// nesting limit (128) holds here as in every other parse of an answer
/// (`serde::de::IgnoredAny` would skip any depth).
pub(crate) fn probe(body: &[u8], max_containers: usize) -> Result<Option<String>, ProbeError> {
    let budget = Budget {
        left: Cell::new(max_containers),
        exceeded: Cell::new(false),
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let outcome = de::DeserializeSeed::deserialize(
        Seek {
            look: Look::Status,
            budget: &budget,
        },
        &mut de,
    )
    .and_then(|found| de.end().map(|()| found));
    match outcome {
        Ok(found) => Ok(found),
        Err(_) if budget.exceeded.get() => Err(ProbeError::TooManyContainers),
        Err(e) => Err(ProbeError::NotJson(e)),
    }
}

struct Budget {
    left: Cell<usize>,
    exceeded: Cell<bool>,
}

impl Budget {
    fn take<E: de::Error>(&self) -> Result<(), E> {
        match self.left.get().checked_sub(1) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => {
                self.exceeded.set(true);
                Err(E::custom("too many objects and arrays"))
            }
        }
    }
}

/// What is being looked for in the value at hand.
#[derive(Clone, Copy)]
enum Look {
    /// The top level: its member `status`.
    Status,
    /// The `status` member: its member `code`.
    Code,
    /// The `code` member: a number other than 0.
    Number,
    /// Nothing: skip.
    Nothing,
}

#[derive(Clone, Copy)]
struct Seek<'a> {
    look: Look,
    budget: &'a Budget,
}

impl<'de> de::DeserializeSeed<'de> for Seek<'_> {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(self)
    }
}

/// A map key, compared with the member looked for without being copied.
struct KeyIs(Option<&'static str>);

impl<'de> de::DeserializeSeed<'de> for KeyIs {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(self.0 == Some(v))
    }
}

impl<'de> Visitor<'de> for Seek<'_> {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(matches!(self.look, Look::Number if v != 0).then(|| v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(matches!(self.look, Look::Number if v != 0).then(|| v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(matches!(self.look, Look::Number if v != 0.0).then(|| v.to_string()))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        self.budget.take()?;
        let skip = Seek {
            look: Look::Nothing,
            ..self
        };
        while seq.next_element_seed(skip)?.is_some() {}
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        self.budget.take()?;
        let (member, inner) = match self.look {
            Look::Status => (Some("status"), Look::Code),
            Look::Code => (Some("code"), Look::Number),
            Look::Number | Look::Nothing => (None, Look::Nothing),
        };
        let mut found = None;
        while let Some(is_member) = map.next_key_seed(KeyIs(member))? {
            let look = if is_member { inner } else { Look::Nothing };
            let value = map.next_value_seed(Seek { look, ..self })?;
            if is_member {
                found = value;
            }
        }
        Ok(found)
    }
}

/// A serde_json error as the detail of an [`UpstreamError`](super::UpstreamError): serde
/// quotes a string of the wrong type (`invalid type: string "...", expected u64`), and that
/// string may be a token of the answer, so every quoted string is replaced by `"…"`.
pub(crate) fn parse_error(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let mut out = String::with_capacity(text.len().min(400));
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '"' {
            // Serde writes the string with `{:?}`: it ends at the first unescaped quote.
            let mut escaped = false;
            for c in chars.by_ref() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => break,
                    _ => {}
                }
            }
            out.push_str("…\"");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn code(body: &str) -> Option<String> {
        probe(body.as_bytes(), 100).ok().unwrap()
    }

    #[test]
    fn the_probe_finds_a_failure_code_only_where_it_is() {
        assert_eq!(
            code(r#"{"status":{"code":3,"message":"x"}}"#).as_deref(),
            Some("3")
        );
        assert_eq!(code(r#"{"status":{"code":-1.5}}"#).as_deref(), Some("-1.5"));
        assert_eq!(
            code(r#"{"status":{"code":0},"data":[1,{"status":{"code":4}}]}"#),
            None
        );
        assert_eq!(code(r#"{"status":{"code":"1"}}"#), None);
        assert_eq!(code(r#"{"status":[{"code":1}]}"#), None);
        assert_eq!(code(r#"{"code":1}"#), None);
        assert_eq!(code(r#"[{"status":{"code":1}}]"#), None);
        assert_eq!(code(r#"{"status":{"code":1},"status":{"code":0}}"#), None);
        assert_eq!(
            code(r#"{"status":{"code":0},"status":{"code":2}}"#).as_deref(),
            Some("2")
        );
        assert_eq!(code(r#"{"":{"code":1}}"#), None);
        assert_eq!(code("null"), None);
        assert!(matches!(probe(b"{} x", 100), Err(ProbeError::NotJson(_))));
    }

    #[test]
    fn the_probe_keeps_the_nesting_limit_and_counts_containers() {
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert!(matches!(
            probe(deep.as_bytes(), 1000),
            Err(ProbeError::NotJson(_))
        ));
        let fine = format!("{{\"x\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert!(probe(fine.as_bytes(), 101).is_ok());
        assert!(matches!(
            probe(fine.as_bytes(), 100),
            Err(ProbeError::TooManyContainers)
        ));
    }

    #[derive(Deserialize, Debug)]
    struct Pair {
        #[allow(dead_code)]
        a: String,
        #[serde(default, deserialize_with = "null_as_default")]
        b: Vec<String>,
    }

    #[test]
    fn objects_must_be_objects_and_null_lists_are_empty() {
        assert!(
            serde_json::from_str::<Pair>(r#"["x", []]"#).is_ok(),
            "serde's leniency"
        );
        assert!(serde_json::from_str::<Obj<Pair>>(r#"["x", []]"#).is_err());
        let pair = serde_json::from_str::<Obj<Pair>>(r#"{"a":"x","b":null}"#).unwrap();
        assert!(pair.0.b.is_empty());
    }

    #[test]
    fn parse_errors_quote_no_string() {
        let error = serde_json::from_str::<u64>(r#""tok-\"quoted\" secret""#).unwrap_err();
        let detail = parse_error(&error);
        assert!(
            !detail.contains("tok") && !detail.contains("secret"),
            "{detail}"
        );
        assert!(
            detail.starts_with("invalid type: string \"…\", expected u64"),
            "{detail}"
        );
        let error = serde_json::from_str::<Pair>(r#"{"b":[]}"#).unwrap_err();
        assert_eq!(parse_error(&error), "missing field `a` at line 1 column 8");
    }
}
