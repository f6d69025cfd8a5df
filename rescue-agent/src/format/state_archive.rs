//! One bootbank's saved configuration: state.tgz → local.tgz (or the 7.0U2+ encrypted
//! local.tgz.ve) → etc/vmware/esx.conf, opened for reading and rewritten with only esx.conf changed.

use serde::Serialize;

use crate::archive::{self, Limits};
use crate::configstore;
use crate::envelope::{self, EncryptionInfo, Envelope, EnvelopeError, Filler};

pub const ESX_CONF: &str = "etc/vmware/esx.conf";
/// Largest esx.conf read (the real 7.0U2 one is 12 KiB).
pub const ESX_CONF_LIMIT: u64 = 16 << 20;
const LOCAL_TGZ: &str = "local.tgz";
const LOCAL_TGZ_VE: &str = "local.tgz.ve";
const ENCRYPTION_INFO: &[&str] = &["encryption.info", ".#encryption.info"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flavor {
    /// local.tgz in the clear (≤ 7.0U1).
    Plain,
    /// 7.0U2+ local.tgz.ve with encryption.info mode NONE: decrypted and re-encrypted offline.
    Encrypted,
}

struct Encryption {
    envelope: Envelope,
    key: [u8; 32],
    filler: Filler,
}

pub struct StateArchive {
    pub flavor: Flavor,
    pub state_tgz: Vec<u8>,
    pub local_tgz: Vec<u8>,
    /// The member name of local.tgz (or local.tgz.ve) inside state.tgz, as stored.
    local_member: String,
    /// The member name of esx.conf inside local.tgz, as stored.
    esx_conf_member: String,
    pub esx_conf: String,
    /// The member name of the ConfigStore database, as stored.
    configstore_member: Option<String>,
    /// ConfigStore database when local.tgz carries one (7.0+; where 7.0U2+ keeps passthrough).
    pub configstore: Option<Vec<u8>>,
    encryption: Option<Encryption>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state.tgz: {0}")]
    Archive(#[from] archive::ArchiveError),
    #[error("{0}")]
    Envelope(#[from] EnvelopeError),
    #[error("state.tgz holds neither local.tgz nor local.tgz.ve + encryption.info (members: {0})")]
    UnknownLayout(String),
    #[error("local.tgz has no etc/vmware/esx.conf")]
    NoEsxConf,
    #[error("esx.conf is not text: {0}")]
    NotText(std::str::Utf8Error),
    #[error("local.tgz has no ConfigStore database to replace")]
    NoConfigStore,
}

impl StateError {
    /// TPM-sealed configurations cannot be repaired offline: a refusal, not a failure.
    pub fn is_tpm_sealed(&self) -> bool {
        matches!(self, StateError::Envelope(EnvelopeError::TpmSealed { .. }))
    }
}

fn normalised(name: &str) -> &str {
    name.trim_start_matches("./")
}

impl StateArchive {
    pub fn open(state_tgz: Vec<u8>) -> Result<StateArchive, StateError> {
        let limits = Limits::default();
        let tar = archive::gunzip(&state_tgz, &limits)?;
        let members = archive::list(&tar, &limits)?;
        let find = |wanted: &str| {
            members
                .iter()
                .find(|m| normalised(&m.name) == wanted)
                .map(|m| m.name.clone())
        };
        let (flavor, local_member, local_tgz, encryption) = if let Some(name) = find(LOCAL_TGZ) {
            let local = archive::read_member(&tar, &name, &limits)?;
            (Flavor::Plain, name, local, None)
        } else if let (Some(ve_name), Some(info_name)) = (
            find(LOCAL_TGZ_VE),
            ENCRYPTION_INFO.iter().find_map(|n| find(n)),
        ) {
            let info_bytes = archive::read_member(&tar, &info_name, &limits)?;
            let info: EncryptionInfo =
                envelope::parse_encryption_info(&String::from_utf8_lossy(&info_bytes))?;
            let key = envelope::derive_key(&info)?;
            let ve = archive::read_member(&tar, &ve_name, &limits)?;
            let env = envelope::parse_envelope(&ve)?;
            let (local, filler) = envelope::decrypt_keeping_filler(&ve, &key)?;
            (
                Flavor::Encrypted,
                ve_name,
                local,
                Some(Encryption {
                    envelope: env,
                    key,
                    filler,
                }),
            )
        } else {
            let names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
            return Err(StateError::UnknownLayout(names.join(", ")));
        };
        let local_tar = archive::gunzip(&local_tgz, &limits)?;
        let local_members = archive::list(&local_tar, &limits)?;
        let member_named = |wanted: &str| {
            local_members
                .iter()
                .find(|m| normalised(&m.name) == wanted)
                .map(|m| m.name.clone())
        };
        let esx_conf_member = member_named(ESX_CONF).ok_or(StateError::NoEsxConf)?;
        // esx.conf is tens of KiB on real hosts; a bigger one is not a configuration to edit.
        // Its own size is checked, not the walk's: other members (dvsdata.db, a VIB's files)
        // may well be larger and are left as they are.
        let conf_size = local_members
            .iter()
            .find(|m| m.name == esx_conf_member)
            .map_or(0, |m| m.size);
        if conf_size > ESX_CONF_LIMIT {
            return Err(StateError::Archive(archive::ArchiveError::TooLarge {
                what: format!("{ESX_CONF} of {conf_size} bytes"),
                limit: ESX_CONF_LIMIT,
            }));
        }
        let conf_bytes = archive::read_member(&local_tar, &esx_conf_member, &limits)?;
        let esx_conf = std::str::from_utf8(&conf_bytes)
            .map_err(StateError::NotText)?
            .to_string();
        let configstore_member = member_named(configstore::MEMBER);
        let configstore = match &configstore_member {
            Some(name) => Some(archive::read_member(&local_tar, name, &limits)?),
            None => None,
        };
        // The outer tar is not needed any more: drop it before the inner one is inflated.
        drop(tar);
        Ok(StateArchive {
            flavor,
            state_tgz,
            local_member,
            local_tgz,
            esx_conf_member,
            esx_conf,
            configstore_member,
            configstore,
            encryption,
        })
    }

    /// A new state.tgz whose only differences are esx.conf's content and, when given, the
    /// ConfigStore database's (and, for the encrypted flavour, the re-encrypted local.tgz.ve;
    /// encryption.info stays as it is).
    pub fn with_changes(
        &self,
        esx_conf: Option<&str>,
        configstore: Option<&[u8]>,
    ) -> Result<Vec<u8>, StateError> {
        let limits = Limits::default();
        let mut replacements: Vec<(&str, &[u8])> = Vec::new();
        if let Some(conf) = esx_conf.filter(|c| *c != self.esx_conf) {
            replacements.push((&self.esx_conf_member, conf.as_bytes()));
        }
        if let Some(db) = configstore {
            let member = self
                .configstore_member
                .as_deref()
                .ok_or(StateError::NoConfigStore)?;
            replacements.push((member, db));
        }
        let local = if replacements.is_empty() {
            self.local_tgz.clone()
        } else {
            archive::replace_members_in_tgz(&self.local_tgz, &replacements, &limits)?
        };
        let content = match &self.encryption {
            None => local,
            Some(enc) => envelope::encrypt_with_filler(
                &enc.envelope,
                &enc.key,
                envelope::next_iv(&enc.envelope.iv),
                &local,
                &enc.filler,
            )?,
        };
        Ok(archive::replace_in_tgz(
            &self.state_tgz,
            &self.local_member,
            &content,
            &limits,
        )?)
    }

    /// A new state.tgz whose only difference is esx.conf's content.
    pub fn with_esx_conf(&self, esx_conf: &str) -> Result<Vec<u8>, StateError> {
        self.with_changes(Some(esx_conf), None)
    }
}
