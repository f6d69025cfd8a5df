//! One bootbank's saved configuration: state.tgz → local.tgz (or the 7.0U2+ encrypted
//! local.tgz.ve) → etc/vmware/esx.conf and the ConfigStore database, opened for reading and
//! rewritten with only those two members changed.

use serde::Serialize;

use crate::archive::{self, GzipFrame, Limits, OuterFrame};
use crate::configstore;
use crate::envelope::{self, EncryptionInfo, Envelope, EnvelopeError, Filler};
use crate::plan::ContentDigest;

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
    /// Size and sha256 of the bank's state.tgz as read (the bytes themselves are not kept: the
    /// undo record reads them from the disk again, checked against this digest).
    pub state_tgz: ContentDigest,
    /// state.tgz's gzip framing and its tar without local.tgz's data.
    outer_gzip: GzipFrame,
    outer: OuterFrame,
    /// local.tgz in the clear (decrypted on 7.0U2+): the one layer kept.
    local_tgz: Vec<u8>,
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
    /// Open the layers one at a time, each freed once the next is out of it: state.tgz, its
    /// tar, local.tgz (decrypted on 7.0U2+ in its own buffer), its tar. No more than two
    /// layer-sized buffers live at once, and only local.tgz is kept.
    pub fn open(state_tgz: Vec<u8>) -> Result<StateArchive, StateError> {
        let limits = Limits::default();
        let digest = ContentDigest::of(&state_tgz);
        let outer_gzip = GzipFrame::of(&state_tgz)?;
        let tar = archive::gunzip(&state_tgz, &limits)?;
        drop(state_tgz);
        let members = archive::list(&tar, &limits)?;
        let find = |wanted: &str| {
            members
                .iter()
                .find(|m| normalised(&m.name) == wanted)
                .map(|m| m.name.clone())
        };
        let (flavor, local_member, key) = if let Some(name) = find(LOCAL_TGZ) {
            (Flavor::Plain, name, None)
        } else if let (Some(ve_name), Some(info_name)) = (
            find(LOCAL_TGZ_VE),
            ENCRYPTION_INFO.iter().find_map(|n| find(n)),
        ) {
            let info_bytes = archive::read_member(&tar, &info_name, &limits)?;
            let info: EncryptionInfo =
                envelope::parse_encryption_info(&String::from_utf8_lossy(&info_bytes))?;
            (
                Flavor::Encrypted,
                ve_name,
                Some(envelope::derive_key(&info)?),
            )
        } else {
            let names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
            return Err(StateError::UnknownLayout(names.join(", ")));
        };
        let outer = OuterFrame::around(&tar, &local_member, &limits)?;
        let stored = archive::take_member(tar, &local_member, &limits)?;
        let (local_tgz, encryption) = match key {
            None => (stored, None),
            Some(key) => {
                let envelope = envelope::parse_envelope(&stored)?;
                let (local, filler) = envelope::decrypt_owned(stored, &key)?;
                let encryption = Encryption {
                    envelope,
                    key,
                    filler,
                };
                (local, Some(encryption))
            }
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
        Ok(StateArchive {
            flavor,
            state_tgz: digest,
            outer_gzip,
            outer,
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
    /// encryption.info stays as it is). Each new layer is made in the buffer of the one inside
    /// it, so beside the kept local.tgz one layer-sized buffer lives at a time.
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
            Some(enc) => envelope::encrypt_owned(
                &enc.envelope,
                &enc.key,
                envelope::next_iv(&enc.envelope.iv),
                local,
                &enc.filler,
            )?,
        };
        let tar = archive::rebuild_around(&self.outer, content, &limits)?;
        let out = self.outer_gzip.regzip_owned(tar)?;
        Ok(archive::within_compressed_limit(out, "state.tgz", &limits)?)
    }
}
