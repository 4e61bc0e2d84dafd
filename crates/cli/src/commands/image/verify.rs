//! `brickless image verify`.
use std::path::PathBuf;

use brickless_image::{verify_bytes, PublicKey};
use clap::Args;
use miette::{miette, Result};

use super::{erased_arg, load_flat};
use crate::commands::keys::load_key;

/// Arguments of `brickless image verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Trusted public or private key PEM; repeat for several. Without one only the hash is checked.
    #[arg(short = 'k', long = "key")]
    pub keys: Vec<PathBuf>,
    /// Value erased flash reads as (fills gaps in a HEX image).
    #[arg(short = 'R', long = "erased-val", default_value = "0xff", value_parser = erased_arg)]
    pub erased_val: u8,
    /// Image file: BIN or Intel HEX (.hex), padded to the slot or not.
    pub image: PathBuf,
}

pub(super) fn verify(args: VerifyArgs) -> Result<()> {
    let mut keys: Vec<PublicKey> = Vec::new();
    for path in &args.keys {
        keys.push(load_key(path)?.public_key());
    }
    let (bytes, _) = load_flat(&args.image, args.erased_val)?;
    let verified = verify_bytes(&bytes, &keys).map_err(|e| {
        use brickless_image::VerifyError as V;
        let help = match &e {
            V::UnknownKey | V::MissingSignature => {
                "pass the public key the image was signed with; `brickless image inspect` shows its key hash"
            }
            V::HashMismatch { .. } => {
                "the header, firmware or protected TLVs changed after signing: sign it again"
            }
            V::BadSignature => "the image was altered or its signature forged: do not install it",
            V::MissingKeyTlv => "the image is unsigned: sign it with `brickless image sign -k KEY`",
            V::Format(_) => "is this a signed image? `brickless image inspect` shows its structure",
            _ => "the image is damaged, was changed after signing, or was signed with another key",
        };
        miette!(help = help, "{} failed verification: {e}", args.image.display())
    })?;
    match verified.key_index.and_then(|i| args.keys.get(i)) {
        Some(key) => println!(
            "{}: OK, version {}, signed by {}, hash {}",
            args.image.display(),
            verified.version(),
            key.display(),
            base16ct::lower::encode_string(&verified.hash)
        ),
        None => println!(
            "{}: hash OK (no key given, signature not checked), version {}, hash {}",
            args.image.display(),
            verified.version(),
            base16ct::lower::encode_string(&verified.hash)
        ),
    }
    Ok(())
}
