//! One bootbank's saved configuration: state.tgz → local.tgz (or the 7.0U2+ encrypted
//! local.tgz.ve) → etc/vmware/esx.conf, opened for reading and rewritten with only esx.conf changed.

use serde::Serialize;

use crate::archive::{self, Limits};
use crate::configstore;
use crate::envelope::{self, EncryptionInfo, Envelope, EnvelopeError};

pub const ESX_CONF: &str = "etc/vmware/esx.conf";
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
}

pub struct StateArchive {
    pub flavor: Flavor,
    pub state_tgz: Vec<u8>,
    pub local_tgz: Vec<u8>,
    /// The member name of esx.conf inside local.tgz, as stored.
    esx_conf_member: String,
    pub esx_conf: String,
    /// ConfigStore database when local.tgz carries one (7.0–7.0U1).
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
        let (flavor, local_tgz, encryption) = if let Some(name) = find(LOCAL_TGZ) {
            (
                Flavor::Plain,
                archive::read_member(&tar, &name, &limits)?,
                None,
            )
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
            let local = envelope::decrypt(&ve, &key)?;
            (
                Flavor::Encrypted,
                local,
                Some(Encryption { envelope: env, key }),
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
        let conf_bytes = archive::read_member(&local_tar, &esx_conf_member, &limits)?;
        let esx_conf = std::str::from_utf8(&conf_bytes)
            .map_err(StateError::NotText)?
            .to_string();
        let configstore = match member_named(configstore::MEMBER) {
            Some(name) => Some(archive::read_member(&local_tar, &name, &limits)?),
            None => None,
        };
        Ok(StateArchive {
            flavor,
            state_tgz,
            local_tgz,
            esx_conf_member,
            esx_conf,
            configstore,
            encryption,
        })
    }

    /// A new state.tgz whose only difference is esx.conf's content (and, for the encrypted
    /// flavour, a fresh IV and tag on local.tgz.ve; encryption.info stays as it is).
    pub fn with_esx_conf(&self, esx_conf: &str) -> Result<Vec<u8>, StateError> {
        let limits = Limits::default();
        let local = archive::replace_in_tgz(
            &self.local_tgz,
            &self.esx_conf_member,
            esx_conf.as_bytes(),
            &limits,
        )?;
        let tar = archive::gunzip(&self.state_tgz, &limits)?;
        let members = archive::list(&tar, &limits)?;
        let (member, content) = match &self.encryption {
            None => (LOCAL_TGZ, local),
            Some(enc) => (
                LOCAL_TGZ_VE,
                envelope::encrypt(&enc.envelope, &enc.key, envelope::fresh_iv(), &local)?,
            ),
        };
        let name = members
            .iter()
            .find(|m| normalised(&m.name) == member)
            .map(|m| m.name.clone())
            .unwrap_or_else(|| member.to_string());
        Ok(archive::replace_in_tgz(
            &self.state_tgz,
            &name,
            &content,
            &limits,
        )?)
    }
}
