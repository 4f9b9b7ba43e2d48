//! One config section read into two structs: a component's own keys and a set of keys shared
//! by several components (the etcd client's security keys, which every `[etcd]` section
//! carries).
//!
//! `#[serde(flatten)]` would do it, but it cannot be combined with `deny_unknown_fields`, it
//! hides the keys from the environment-override schema (`conf_file::schema`), and it buffers
//! INI text values so that `timeout = 5` no longer converts to a number. [`split`] instead
//! reads the section as a struct with the full key list (the schema sees every key), refuses
//! unknown keys itself, and hands each part to its struct as a `config::Value` table, which
//! still converts text to the fields' types.
//!
//! The component's struct derives `Deserialize` with `#[serde(remote = "Self")]` (an
//! inherent `deserialize` for its own keys, the shared part `#[serde(skip)]`) and
//! implements `Deserialize` by calling [`split`]; logagent's `[etcd]` is an example.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserializer;
use serde::de::{DeserializeOwned, Error as _, MapAccess, Visitor};

/// Joins a component's own keys and the shared keys into one list (for [`split`]'s
/// `fields`, which must be `'static`): `static FIELDS: [&str; 9] = join_keys(&OWN, &SHARED)`.
/// A wrong `N` fails at compile time.
pub const fn join_keys<const N: usize>(
    own: &[&'static str],
    shared: &[&'static str],
) -> [&'static str; N] {
    assert!(
        own.len() + shared.len() == N,
        "N must be the number of keys"
    );
    let mut keys = [""; N];
    let mut i = 0;
    while i < own.len() {
        keys[i] = own[i];
        i += 1;
    }
    let mut j = 0;
    while j < shared.len() {
        keys[i + j] = shared[j];
        j += 1;
    }
    keys
}

/// Reads a section named `name` whose keys are `fields`: the keys in `shared_keys` become a
/// `B`, the others go to `own` (the component's derived, `remote = "Self"` deserializer).
/// A key in neither is an "unknown field" error naming it.
pub fn split<'de, D, A, B>(
    deserializer: D,
    name: &'static str,
    fields: &'static [&'static str],
    shared_keys: &[&str],
    own: fn(config::Value) -> Result<A, config::ConfigError>,
) -> Result<(A, B), D::Error>
where
    D: Deserializer<'de>,
    B: DeserializeOwned,
{
    let entries = deserializer.deserialize_struct(
        name,
        fields,
        Entries {
            fields,
            _marker: PhantomData,
        },
    )?;
    let (shared, rest): (BTreeMap<_, _>, BTreeMap<_, _>) = entries
        .into_iter()
        .partition(|(key, _)| shared_keys.contains(&key.as_str()));
    let table = |map: BTreeMap<String, config::Value>| {
        config::Value::new(None, config::ValueKind::Table(map.into_iter().collect()))
    };
    let own = own(table(rest)).map_err(D::Error::custom)?;
    let shared = B::deserialize(table(shared)).map_err(D::Error::custom)?;
    Ok((own, shared))
}

/// Collects the section's entries, refusing keys not in `fields`.
struct Entries<'de> {
    fields: &'static [&'static str],
    _marker: PhantomData<&'de ()>,
}

impl<'de> Visitor<'de> for Entries<'de> {
    type Value = BTreeMap<String, config::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a section of keys and values")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut entries = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            if !self.fields.contains(&key.as_str()) {
                return Err(M::Error::unknown_field(&key, self.fields));
            }
            let value: config::Value = map.next_value()?;
            entries.insert(key, value);
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigFormat, load_str};
    use serde::Deserialize;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Shared {
        username: String,
        tls: bool,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(remote = "Self", default, deny_unknown_fields)]
    struct Section {
        timeout: u64,
        key: String,
        #[serde(skip)]
        shared: Shared,
    }

    impl Default for Section {
        fn default() -> Self {
            Section {
                timeout: 5,
                key: "/k".into(),
                shared: Shared::default(),
            }
        }
    }

    static FIELDS: [&str; 4] = join_keys(&["timeout", "key"], &["username", "tls"]);

    impl<'de> Deserialize<'de> for Section {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let (mut section, shared) = split(
                deserializer,
                "Section",
                &FIELDS,
                &["username", "tls"],
                Section::deserialize,
            )?;
            section.shared = shared;
            Ok(section)
        }
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Conf {
        etcd: Section,
        maybe: Option<Section>,
    }

    #[test]
    fn ini_and_toml_fill_both_parts_with_converted_values() {
        let ini: Conf = load_str(
            "[etcd]\ntimeout = 9\nusername = u\ntls = true\n",
            ConfigFormat::Ini,
            None,
        )
        .unwrap();
        let toml: Conf = load_str(
            "[etcd]\ntimeout = 9\nusername = \"u\"\ntls = true\n",
            ConfigFormat::Toml,
            None,
        )
        .unwrap();
        assert_eq!(ini, toml);
        assert_eq!(ini.etcd.timeout, 9);
        assert_eq!(ini.etcd.key, "/k", "missing keys default");
        assert_eq!(
            ini.etcd.shared,
            Shared {
                username: "u".into(),
                tls: true
            }
        );
        assert_eq!(ini.maybe, None);
        let maybe: Conf = load_str("[maybe]\nusername = v\n", ConfigFormat::Ini, None).unwrap();
        assert_eq!(maybe.maybe.unwrap().shared.username, "v");
    }

    #[test]
    fn unknown_and_mistyped_keys_are_named() {
        let err = load_str::<Conf>("[etcd]\nusername_x = u\n", ConfigFormat::Ini, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("username_x"), "{err}");
        assert!(
            err.contains("tls"),
            "the expected keys include the shared ones: {err}"
        );
        let err = load_str::<Conf>("[etcd]\ntimeout = soon\n", ConfigFormat::Ini, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("timeout"), "{err}");
    }

    #[test]
    fn every_key_of_both_parts_can_be_overridden_from_the_environment() {
        // A prefix no other test uses: the process environment is shared between tests.
        // SAFETY: no other thread reads or writes these variables.
        unsafe {
            std::env::set_var("SVCKITSPLIT_ETCD_TIMEOUT", "7");
            std::env::set_var("SVCKITSPLIT_ETCD_USERNAME", "from-env");
        }
        let conf = load_str::<Conf>("", ConfigFormat::Ini, Some("SVCKITSPLIT"));
        unsafe {
            std::env::remove_var("SVCKITSPLIT_ETCD_TIMEOUT");
            std::env::remove_var("SVCKITSPLIT_ETCD_USERNAME");
        }
        let conf = conf.unwrap();
        assert_eq!(conf.etcd.timeout, 7);
        assert_eq!(conf.etcd.shared.username, "from-env");
    }
}
