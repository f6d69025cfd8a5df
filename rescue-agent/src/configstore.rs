//! ConfigStore (7.0–7.0U1, SQLite inside local.tgz): shown, never edited.
//!
//! Which ConfigStore group would hold PCI passthrough is unverified (esxi-format.md §5), so the
//! rescue reports the rows that mention passthrough or an affected address and leaves them be.

use rusqlite::{Connection, OpenFlags};

pub const MEMBER: &str = "var/lib/vmware/configstore/backup/current-store-1";

/// Rows of table `Config` whose text mentions "passthru" or one of `needles`, one line each:
/// "Component/ConfigGroup/Name[Identifier]: <value, shortened>".
pub fn passthru_rows(db: &[u8], needles: &[String]) -> anyhow::Result<Vec<String>> {
    let mut conn = Connection::open_with_flags(
        ":memory:",
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    )?;
    conn.deserialize_read_exact("main", db, db.len(), true)?;
    let mut stmt = conn.prepare(
        "SELECT Component, ConfigGroup, Name, Identifier, \
         COALESCE(UserValue, '') || ' ' || COALESCE(DesiredValue, '') || ' ' || \
         COALESCE(CachedValue, '') || ' ' || COALESCE(AutoConfValue, '') || ' ' || \
         COALESCE(VitalValue, '') FROM Config",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let text = |i: usize| -> String {
            row.get_ref(i)
                .ok()
                .and_then(|v| v.as_str().ok().map(str::to_string))
                .unwrap_or_default()
        };
        let values = text(4);
        let haystack = format!("{} {} {} {} {}", text(0), text(1), text(2), text(3), values)
            .to_ascii_lowercase();
        let hit = haystack.contains("passthru")
            || needles
                .iter()
                .any(|n| haystack.contains(&n.to_ascii_lowercase()));
        if hit {
            let mut v = values.trim().to_string();
            if v.len() > 120 {
                let mut cut = 117;
                while !v.is_char_boundary(cut) {
                    cut -= 1;
                }
                v.truncate(cut);
                v.push_str("...");
            }
            out.push(format!(
                "{}/{}/{}[{}]: {v}",
                text(0),
                text(1),
                text(2),
                text(3)
            ));
        }
        if out.len() >= 50 {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_db() -> Vec<u8> {
        let dir = std::env::temp_dir().join(format!("cs-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("store.db");
        let _ = std::fs::remove_file(&path);
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE Config (Component TEXT, ConfigGroup TEXT, Name TEXT, Identifier TEXT, \
             ModifiedTime INTEGER, CreationTime INTEGER, Version TEXT, Success INTEGER, \
             AutoConfValue TEXT, UserValue TEXT, VitalValue TEXT, CachedValue TEXT, \
             DesiredValue TEXT, Revision INTEGER);
             INSERT INTO Config VALUES ('esx','network','vmknic','vmk0',0,0,'1',1,NULL,'{\"mtu\":1500}',NULL,NULL,NULL,1);
             INSERT INTO Config VALUES ('esx','hardware','pci_passthru','0000:16:00.0',0,0,'1',1,NULL,'{\"owner\":\"passthru\"}',NULL,NULL,NULL,1);",
        )
        .unwrap();
        drop(conn);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        bytes
    }

    #[test]
    fn finds_passthru_rows_only() {
        let rows = passthru_rows(&sample_db(), &[]).unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert!(rows[0].starts_with("esx/hardware/pci_passthru[0000:16:00.0]"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(passthru_rows(b"not a database at all, just bytes", &[]).is_err());
    }
}
