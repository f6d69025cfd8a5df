//! ConfigStore: the SQLite database inside local.tgz
//! (`var/lib/vmware/configstore/backup/current-store-1`) where ESXi 7.0U2+ and 8.x keep PCI
//! passthrough (`esx/hardware/pci_devices`) and module settings (`esx/vmkernel/module_settings`).
//!
//! Read and rewritten with real SQLite, in memory, defensively: the database comes from a disk
//! that may be hostile, so `Config` must be a table, schema code is untrusted, lengths are capped,
//! every statement runs under an instruction budget and scans are capped in rows.
//! A rewrite changes only the JSON field asked for (`owner`, `enabled`) of the rows asked for,
//! through UPDATEs like ESXi's own, so the store's triggers bump ModifiedTime and Revision.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rusqlite::config::DbConfig;
use rusqlite::limits::Limit;
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use crate::esxconf::PciAddr;

pub const MEMBER: &str = "var/lib/vmware/configstore/backup/current-store-1";

/// Largest store accepted: the real 7.0U2 store is 132 KiB; 64 MiB leaves room for big hosts.
pub const MAX_STORE_BYTES: usize = 64 << 20;
/// Largest single value SQLite may produce or read (one JSON column of one row).
const MAX_VALUE_BYTES: i32 = 1 << 20;
/// Rows read per key: a host has at most a few hundred PCI functions or modules.
const MAX_ROWS: usize = 4096;
/// SQLite VM instructions one open-read-rewrite may spend (an integrity check of a 64 MiB store
/// fits; a recursive view or trigger that never ends does not).
const INSTRUCTION_BUDGET: u64 = 2_000_000_000;
const BUDGET_STEP: i32 = 10_000;

pub const OWNER_PASSTHRU: &str = "OWNER_PASSTHRU";
pub const OWNER_VMKERNEL: &str = "OWNER_VMKERNEL";

/// The value columns of `Config` that can carry a field, in the order ESXi's docs list them.
const CONFIG_VALUE_COLUMNS: [&str; 4] =
    ["UserValue", "DesiredValue", "CachedValue", "AutoConfValue"];
/// Where an instance id may also be found (vital fields such as `dl_bus_address` live here).
const VITAL_COLUMN: &str = "VitalValue";
const DESIRED_TABLE: &str = "DesiredUserConfig";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("ConfigStore is {0} bytes, more than the {MAX_STORE_BYTES} accepted")]
    TooLarge(usize),
    #[error("ConfigStore is not an SQLite 3 database (bad header)")]
    NotSqlite,
    #[error("ConfigStore has no table Config ({0})")]
    NoConfigTable(String),
    #[error("ConfigStore: {what}: {source}")]
    Sql {
        what: &'static str,
        source: rusqlite::Error,
    },
    #[error("ConfigStore: {0} rows of {1}, more than the {MAX_ROWS} read")]
    TooManyRows(usize, &'static str),
    #[error("ConfigStore integrity check after the edit: {0}")]
    Integrity(String),
    #[error("ConfigStore edit: {0}")]
    Edit(String),
}

fn sql(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sql { what, source }
}

/// Where a field was found: table and column, e.g. `Config.UserValue`.
pub type ColumnName = String;

/// One `esx/hardware/pci_devices` instance, merged over `Config` and `DesiredUserConfig`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PciDeviceRow {
    /// The row's Identifier as stored (the hex SBDF, e.g. `0000:03:00.0`).
    pub identifier: String,
    /// `sbdf` from the JSON, when present.
    pub sbdf: Option<String>,
    /// The address, from Identifier or, failing that, the JSON `sbdf` (case-insensitive hex).
    pub addr: Option<PciAddr>,
    /// `OWNER_PASSTHRU` when any column says so, else the first owner found.
    pub owner: Option<String>,
    /// The columns whose `owner` is OWNER_PASSTHRU.
    pub passthru_in: Vec<ColumnName>,
    pub hardware_label: Option<String>,
}

impl PciDeviceRow {
    pub fn is_passthru(&self) -> bool {
        !self.passthru_in.is_empty()
    }
}

/// One `esx/vmkernel/module_settings` instance with `enabled` false in some column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DisabledModuleRow {
    pub module: String,
    /// The rows' Identifiers (a rewrite edits rows by Identifier).
    pub identifiers: Vec<String>,
    pub disabled_in: Vec<ColumnName>,
}

/// What the store says about passthrough and modules.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StoreFindings {
    pub pci_devices: Vec<PciDeviceRow>,
    pub disabled_modules: Vec<DisabledModuleRow>,
}

/// What to change: PCI device identifiers whose owner goes to OWNER_VMKERNEL, and the
/// identifiers of module_settings rows whose `enabled` goes to true.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreEdit {
    pub owners_to_vmkernel: Vec<String>,
    pub modules_to_enable: Vec<String>,
}

impl StoreEdit {
    pub fn is_empty(&self) -> bool {
        self.owners_to_vmkernel.is_empty() && self.modules_to_enable.is_empty()
    }
}

/// The page size, schema format and journal bytes of the file header, and `user_version`: what
/// must stay as ESXi wrote it.
#[derive(Debug, PartialEq, Eq)]
struct FileFormat {
    page_size: [u8; 2],
    journal_bytes: [u8; 2],
    schema_format: [u8; 4],
    text_encoding: [u8; 4],
    user_version: [u8; 4],
}

fn file_format(db: &[u8]) -> Result<FileFormat, StoreError> {
    if db.len() < 100 || &db[..16] != b"SQLite format 3\0" {
        return Err(StoreError::NotSqlite);
    }
    let four = |at: usize| [db[at], db[at + 1], db[at + 2], db[at + 3]];
    Ok(FileFormat {
        page_size: [db[16], db[17]],
        journal_bytes: [db[18], db[19]],
        schema_format: four(44),
        text_encoding: four(56),
        user_version: four(60),
    })
}

/// An in-memory copy of the store, opened with every defence on.
struct Store {
    conn: Connection,
    spent: Arc<AtomicU64>,
}

impl Store {
    fn open(db: &[u8], writable: bool) -> Result<Store, StoreError> {
        if db.len() > MAX_STORE_BYTES {
            return Err(StoreError::TooLarge(db.len()));
        }
        file_format(db)?;
        let mut conn = Connection::open_with_flags(
            ":memory:",
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql("opening an in-memory database"))?;
        // Schema code (views, triggers, defaults) runs only with innocuous functions; no
        // writable_schema tricks; bounded values and statements.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)
            .map_err(sql("trusted_schema off"))?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
            .map_err(sql("defensive mode"))?;
        conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
            .map_err(sql("length limit"))?;
        conn.set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, 1 << 20)
            .map_err(sql("SQL length limit"))?;
        conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)
            .map_err(sql("attach limit"))?;
        conn.set_limit(Limit::SQLITE_LIMIT_TRIGGER_DEPTH, 4)
            .map_err(sql("trigger depth limit"))?;
        let spent = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&spent);
        conn.progress_handler(
            BUDGET_STEP,
            Some(move || {
                counter.fetch_add(BUDGET_STEP as u64, Ordering::Relaxed) >= INSTRUCTION_BUDGET
            }),
        )
        .map_err(sql("instruction budget"))?;
        conn.deserialize_read_exact("main", db, db.len(), !writable)
            .map_err(sql("loading the database"))?;
        let store = Store { conn, spent };
        store.require_table("Config")?;
        Ok(store)
    }

    /// `name` must be an ordinary table (a view could compute anything).
    fn require_table(&self, name: &str) -> Result<(), StoreError> {
        let kind: Option<String> = self
            .conn
            .query_row(
                "SELECT CASE WHEN sql LIKE 'CREATE VIRTUAL%' THEN 'virtual table' ELSE type END \
                 FROM sqlite_schema WHERE name = ?1 COLLATE NOCASE",
                [name],
                |r| r.get(0),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })
            .map_err(sql("reading the schema"))?;
        match kind.as_deref() {
            Some("table") => Ok(()),
            Some(other) => Err(StoreError::NoConfigTable(format!(
                "{name} is a {other}, not a table"
            ))),
            None => Err(StoreError::NoConfigTable(format!("no {name}"))),
        }
    }

    fn has_table(&self, name: &str) -> bool {
        self.require_table(name).is_ok()
    }

    /// Rows of one key: (table.column, Identifier, JSON text) for every non-NULL value column.
    fn values(
        &self,
        group: &str,
        key: &str,
    ) -> Result<Vec<(ColumnName, String, String)>, StoreError> {
        let mut out = Vec::new();
        let columns = CONFIG_VALUE_COLUMNS
            .iter()
            .chain(std::iter::once(&VITAL_COLUMN));
        let select = format!(
            "SELECT Identifier, {} FROM Config WHERE Component = 'esx' AND ConfigGroup = ?1 \
             AND Name = ?2 LIMIT {}",
            columns.clone().copied().collect::<Vec<_>>().join(", "),
            MAX_ROWS + 1
        );
        self.collect(&select, group, key, "Config", &mut out, columns.copied())?;
        if self.has_table(DESIRED_TABLE) {
            let select = format!(
                "SELECT Identifier, Value FROM {DESIRED_TABLE} WHERE Component = 'esx' \
                 AND ConfigGroup = ?1 AND Name = ?2 LIMIT {}",
                MAX_ROWS + 1
            );
            self.collect(
                &select,
                group,
                key,
                DESIRED_TABLE,
                &mut out,
                ["Value"].into_iter(),
            )?;
        }
        Ok(out)
    }

    fn collect<'c>(
        &self,
        select: &str,
        group: &str,
        key: &str,
        table: &'static str,
        out: &mut Vec<(ColumnName, String, String)>,
        columns: impl Iterator<Item = &'c str> + Clone,
    ) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare(select).map_err(sql("preparing a read"))?;
        let mut rows = stmt.query([group, key]).map_err(sql("reading rows"))?;
        let mut count = 0;
        while let Some(row) = rows.next().map_err(sql("reading a row"))? {
            count += 1;
            if count > MAX_ROWS {
                return Err(StoreError::TooManyRows(count, table));
            }
            let id: String = text(row, 0).unwrap_or_default();
            for (i, column) in columns.clone().enumerate() {
                if let Some(v) = text(row, i + 1) {
                    out.push((format!("{table}.{column}"), id.clone(), v));
                }
            }
        }
        Ok(())
    }

    fn exec(&self, what: &'static str, statement: &str, id: &str) -> Result<usize, StoreError> {
        self.conn.execute(statement, [id]).map_err(sql(what))
    }
}

/// A text cell, or None for NULL, non-text or unreadable.
fn text(row: &rusqlite::Row<'_>, i: usize) -> Option<String> {
    row.get_ref(i)
        .ok()
        .and_then(|v| v.as_str().ok().map(str::to_string))
}

fn json_field(json: &str, field: &str) -> Option<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(json)
        .ok()?
        .get(field)
        .cloned()
}

fn json_str(json: &str, field: &str) -> Option<String> {
    json_field(json, field).and_then(|v| v.as_str().map(str::to_string))
}

/// Hex SBDF as ConfigStore writes it, case-insensitively: `0000:03:00.0`.
fn parse_sbdf(s: &str) -> Option<PciAddr> {
    PciAddr::parse_linux(s).ok()
}

/// Read the PCI ownership rows and the disabled modules.
pub fn read(db: &[u8]) -> Result<StoreFindings, StoreError> {
    let store = Store::open(db, false)?;
    let mut devices: BTreeMap<String, PciDeviceRow> = BTreeMap::new();
    for (column, id, json) in store.values("hardware", "pci_devices")? {
        let row = devices
            .entry(id.to_ascii_lowercase())
            .or_insert_with(|| PciDeviceRow {
                identifier: id.clone(),
                sbdf: None,
                addr: parse_sbdf(&id),
                owner: None,
                passthru_in: Vec::new(),
                hardware_label: None,
            });
        if let Some(sbdf) = json_str(&json, "sbdf") {
            if row.addr.is_none() {
                row.addr = parse_sbdf(&sbdf);
            }
            row.sbdf.get_or_insert(sbdf);
        }
        if let Some(label) = json_str(&json, "hardware_label") {
            row.hardware_label.get_or_insert(label);
        }
        // VitalValue holds vital fields (sbdf, dl_bus_address), never the owner: only the
        // columns a rewrite edits may count.
        let editable = !column.ends_with(VITAL_COLUMN);
        if let Some(owner) = json_str(&json, "owner").filter(|_| editable) {
            if owner == OWNER_PASSTHRU {
                row.passthru_in.push(column.clone());
                row.owner = Some(owner);
            } else {
                row.owner.get_or_insert(owner);
            }
        }
    }
    let mut modules: BTreeMap<String, DisabledModuleRow> = BTreeMap::new();
    for (column, id, json) in store.values("vmkernel", "module_settings")? {
        if column.ends_with(VITAL_COLUMN) {
            continue;
        }
        if json_field(&json, "enabled") == Some(serde_json::Value::Bool(false)) {
            let name = json_str(&json, "module_name").unwrap_or_else(|| id.clone());
            let row = modules
                .entry(name.clone())
                .or_insert_with(|| DisabledModuleRow {
                    module: name,
                    identifiers: Vec::new(),
                    disabled_in: Vec::new(),
                });
            if !row.identifiers.contains(&id) {
                row.identifiers.push(id);
            }
            row.disabled_in.push(column);
        }
    }
    Ok(StoreFindings {
        pci_devices: devices.into_values().collect(),
        disabled_modules: modules.into_values().collect(),
    })
}

/// `SET col = json_set(col, '$.field', new)` for each column whose field is there and differs.
fn set_field_sql(columns: &[&str], field: &str, new_value_sql: &str, differs_sql: &str) -> String {
    columns
        .iter()
        .map(|c| {
            format!(
                "{c} = CASE WHEN json_valid({c}) AND json_type({c}, '$.{field}') IS NOT NULL \
                 AND {differs} THEN json_set({c}, '$.{field}', {new_value_sql}) ELSE {c} END",
                differs = differs_sql.replace("{c}", c)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One JSON field set to one value in the rows of one key: which rows, the SQL of the new value,
/// and the SQL condition (with `{c}` for the column) under which a column needs it.
struct FieldFlip<'a> {
    ids: &'a [String],
    group: &'a str,
    key: &'a str,
    field: &'a str,
    new_value: &'a str,
    differs: &'a str,
}

/// The store with `edit` applied, re-serialised: same page size, journal mode, encoding and
/// user_version; every other row and table as it was; integrity check `ok`.
pub fn rewrite(db: &[u8], edit: &StoreEdit) -> Result<Vec<u8>, StoreError> {
    let format_before = file_format(db)?;
    let mut store = Store::open(db, true)?;
    let desired = store.has_table(DESIRED_TABLE);
    let owner_differs = format!("json_extract({{c}}, '$.owner') IS NOT '{OWNER_VMKERNEL}'");
    let enabled_differs = "json_type({c}, '$.enabled') = 'false'";
    let key_filter = "WHERE Component = 'esx' AND ConfigGroup = '{group}' AND Name = '{key}' \
                      AND Identifier = ?1 COLLATE NOCASE";
    let plan = [
        FieldFlip {
            ids: &edit.owners_to_vmkernel,
            group: "hardware",
            key: "pci_devices",
            field: "owner",
            new_value: "'OWNER_VMKERNEL'",
            differs: &owner_differs,
        },
        FieldFlip {
            ids: &edit.modules_to_enable,
            group: "vmkernel",
            key: "module_settings",
            field: "enabled",
            new_value: "json('true')",
            differs: enabled_differs,
        },
    ];
    for FieldFlip {
        ids,
        group,
        key,
        field,
        new_value,
        differs,
    } in plan
    {
        let filter = key_filter.replace("{group}", group).replace("{key}", key);
        for id in ids {
            // One UPDATE per row, as ESXi's own set does: the triggers then bump ModifiedTime
            // and Revision exactly once.
            let config = format!(
                "UPDATE Config SET {} {filter} AND ({})",
                set_field_sql(&CONFIG_VALUE_COLUMNS, field, new_value, differs),
                CONFIG_VALUE_COLUMNS
                    .iter()
                    .map(|c| format!(
                        "(json_valid({c}) AND json_type({c}, '$.{field}') IS NOT NULL AND {})",
                        differs.replace("{c}", c)
                    ))
                    .collect::<Vec<_>>()
                    .join(" OR ")
            );
            let mut changed = store.exec("updating Config", &config, id)?;
            if desired {
                let statement = format!(
                    "UPDATE {DESIRED_TABLE} SET {} {filter} AND json_valid(Value) AND \
                     json_type(Value, '$.{field}') IS NOT NULL AND {}",
                    set_field_sql(&["Value"], field, new_value, differs),
                    differs.replace("{c}", "Value")
                );
                changed += store.exec("updating DesiredUserConfig", &statement, id)?;
            }
            if changed == 0 {
                return Err(StoreError::Edit(format!(
                    "no row of esx/{group}/{key} [{id}] needed the change"
                )));
            }
        }
    }
    let check: String = store
        .conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(sql("integrity check"))?;
    if check != "ok" {
        return Err(StoreError::Integrity(check));
    }
    let bytes = store
        .conn
        .serialize("main")
        .map_err(sql("serialising the database"))?
        .to_vec();
    log::debug!(
        "ConfigStore rewrite: {} bytes, {} SQLite instructions",
        bytes.len(),
        store.spent.load(Ordering::Relaxed)
    );
    let format_after = file_format(&bytes)?;
    if format_after != format_before {
        return Err(StoreError::Edit(format!(
            "the file format changed ({format_before:?} -> {format_after:?})"
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db_from(sql_text: &str) -> Vec<u8> {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(sql_text).unwrap();
        conn.serialize("main").unwrap().to_vec()
    }

    const SCHEMA: &str = "CREATE TABLE Config(Component TEXT,ConfigGroup TEXT,Name TEXT,\
        Identifier TEXT NOT NULL DEFAULT '',ModifiedTime DATETIME DEFAULT (datetime(CURRENT_TIMESTAMP)),\
        CreationTime DATETIME,Version TEXT DEFAULT '',Success BOOLEAN DEFAULT 1,AutoConfValue TEXT, \
        UserValue TEXT, VitalValue TEXT, CachedValue TEXT, DesiredValue TEXT, Revision INTEGER DEFAULT 0, \
        PRIMARY KEY(Component, ConfigGroup, Name, Identifier));\
        CREATE TRIGGER updateRevision AFTER UPDATE OF AutoConfValue,UserValue,VitalValue,CachedValue ON Config \
        BEGIN UPDATE Config SET Revision=OLD.Revision + 1 WHERE Name=NEW.Name and Component=NEW.Component \
        and ConfigGroup=New.ConfigGroup and Identifier=NEW.Identifier; END;";

    fn store_with(rows: &str) -> Vec<u8> {
        db_from(&format!("{SCHEMA}{rows}"))
    }

    #[test]
    fn reads_owner_rows_in_every_column() {
        let db = store_with(
            "INSERT INTO Config(Component,ConfigGroup,Name,Identifier,UserValue,VitalValue,Revision) VALUES \
             ('esx','hardware','pci_devices','0000:03:00.0','{\"sbdf\":\"0000:03:00.0\",\"owner\":\"OWNER_PASSTHRU\",\"hardware_label\":\"boot\"}','{\"sbdf\":\"0000:03:00.0\",\"dl_bus_address\":\"s00000003.00\"}',3),\
             ('esx','hardware','pci_devices','0000:0B:00.0','{\"sbdf\":\"0000:0B:00.0\",\"owner\":\"OWNER_VMKERNEL\"}',NULL,1);",
        );
        let f = read(&db).unwrap();
        assert_eq!(f.pci_devices.len(), 2);
        let boot = &f.pci_devices[0];
        assert_eq!(boot.addr.unwrap().to_string(), "0000:03:00.0");
        assert_eq!(boot.passthru_in, vec!["Config.UserValue".to_string()]);
        assert_eq!(boot.hardware_label.as_deref(), Some("boot"));
        let nic = &f.pci_devices[1];
        assert_eq!(nic.addr.unwrap().to_string(), "0000:0b:00.0");
        assert!(!nic.is_passthru());
    }

    #[test]
    fn rewrite_changes_only_the_owner_and_bumps_revision_once() {
        let db = store_with(
            "INSERT INTO Config(Component,ConfigGroup,Name,Identifier,UserValue,DesiredValue,Revision) VALUES \
             ('esx','hardware','pci_devices','0000:03:00.0','{\"sbdf\":\"0000:03:00.0\",\"owner\":\"OWNER_PASSTHRU\",\"max_vfs\":0}','{\"owner\":\"OWNER_PASSTHRU\"}',3),\
             ('esx','hardware','pci_devices','0000:02:00.0','{\"sbdf\":\"0000:02:00.0\",\"owner\":\"OWNER_PASSTHRU\"}',NULL,7);",
        );
        let edit = StoreEdit {
            owners_to_vmkernel: vec!["0000:03:00.0".into()],
            ..Default::default()
        };
        let out = rewrite(&db, &edit).unwrap();
        let f = read(&out).unwrap();
        let boot = f
            .pci_devices
            .iter()
            .find(|r| r.identifier == "0000:03:00.0")
            .unwrap();
        assert!(!boot.is_passthru());
        let gpu = f
            .pci_devices
            .iter()
            .find(|r| r.identifier == "0000:02:00.0")
            .unwrap();
        assert!(gpu.is_passthru());
        let mut conn = Connection::open_in_memory().unwrap();
        conn.deserialize_read_exact("main", &out[..], out.len(), true)
            .unwrap();
        let (user, rev): (String, i64) = conn
            .query_row(
                "SELECT UserValue, Revision FROM Config WHERE Identifier='0000:03:00.0'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(
            user,
            "{\"sbdf\":\"0000:03:00.0\",\"owner\":\"OWNER_VMKERNEL\",\"max_vfs\":0}"
        );
        assert_eq!(rev, 4);
        let rev_gpu: i64 = conn
            .query_row(
                "SELECT Revision FROM Config WHERE Identifier='0000:02:00.0'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(rev_gpu, 7);
    }

    #[test]
    fn a_flip_that_finds_nothing_to_change_is_an_error() {
        let db = store_with("");
        let edit = StoreEdit {
            owners_to_vmkernel: vec!["0000:03:00.0".into()],
            ..Default::default()
        };
        assert!(matches!(rewrite(&db, &edit), Err(StoreError::Edit(_))));
    }

    #[test]
    fn config_as_a_view_is_refused_before_it_runs() {
        let db = db_from(
            "CREATE VIEW Config AS WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM n) \
             SELECT 'esx' AS Component, 'hardware' AS ConfigGroup, 'pci_devices' AS Name, \
             x AS Identifier, NULL AS UserValue FROM n;",
        );
        let e = read(&db).unwrap_err();
        assert!(e.to_string().contains("view"), "{e}");
    }

    #[test]
    fn a_virtual_config_table_is_refused() {
        let db = db_from("CREATE VIRTUAL TABLE Config USING fts5(Component, UserValue);");
        let e = read(&db).unwrap_err();
        assert!(e.to_string().contains("virtual table"), "{e}");
    }

    #[test]
    fn owner_in_vital_value_is_not_counted_and_modules_edit_by_identifier() {
        let db = store_with(
            "INSERT INTO Config(Component,ConfigGroup,Name,Identifier,UserValue,VitalValue,Revision) VALUES \
             ('esx','hardware','pci_devices','0000:03:00.0',NULL,'{\"sbdf\":\"0000:03:00.0\",\"owner\":\"OWNER_PASSTHRU\"}',1),\
             ('esx','vmkernel','module_settings','row-7','{\"module_name\":\"vmkusb\",\"enabled\":false}',NULL,1);",
        );
        let f = read(&db).unwrap();
        assert!(
            !f.pci_devices[0].is_passthru(),
            "VitalValue never holds the owner a rewrite edits"
        );
        assert_eq!(f.disabled_modules[0].module, "vmkusb");
        assert_eq!(f.disabled_modules[0].identifiers, ["row-7"]);
        let out = rewrite(
            &db,
            &StoreEdit {
                modules_to_enable: vec!["row-7".into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert!(read(&out).unwrap().disabled_modules.is_empty());
    }

    #[test]
    fn huge_values_hit_the_length_limit_not_the_allocator() {
        let db = store_with(&format!(
            "INSERT INTO Config(Component,ConfigGroup,Name,Identifier,UserValue) VALUES \
             ('esx','hardware','pci_devices','0000:03:00.0','{}');",
            "x".repeat(2 << 20)
        ));
        assert!(read(&db).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(
            read(b"not a database at all, just bytes"),
            Err(StoreError::NotSqlite)
        ));
        let mut db = store_with("");
        db.truncate(200);
        assert!(read(&db).is_err());
    }
}
