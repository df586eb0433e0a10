//! The embedded migrations. Add a file to `migrations/` and a line here; the unit
//! test below fails when the two disagree.

use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    /// sha256 of the SQL text as embedded: any edit to an applied file is detected.
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }
}

macro_rules! migration {
    ($version:literal, $name:literal, $file:literal) => {
        Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../migrations/", $file)),
        }
    };
}

/// In ascending version order (checked by a test and again at run time).
pub const MIGRATIONS: &[Migration] = &[
    migration!(1, "create_tenants", "0001_create_tenants.sql"),
    migration!(2, "create_properties", "0002_create_properties.sql"),
    migration!(
        3,
        "create_kennels_and_bookings",
        "0003_create_kennels_and_bookings.sql"
    ),
    migration!(4, "create_users", "0004_create_users.sql"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_listed_once_in_version_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .expect("migrations dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS
            .iter()
            .map(|m| format!("{:04}_{}.sql", m.version, m.name))
            .collect();
        assert_eq!(files, listed);
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
    }

    #[test]
    fn checksum_is_sha256_hex_of_the_sql() {
        let m = Migration {
            version: 9,
            name: "x",
            sql: "SELECT 1;",
        };
        assert_eq!(
            m.checksum(),
            "17db4fd369edb9244b9f91d9aeed145c3d04ad8ba6e95d06247f07a63527d11a"
        );
        assert_ne!(
            m.checksum(),
            Migration {
                sql: "SELECT 2;",
                ..m
            }
            .checksum()
        );
    }
}
