//! `brickless image inspect`: the fields of `imgtool dumpinfo`, as text or JSON.
use std::path::{Path, PathBuf};

use brickless_image::inspect::{inspect, ImageInfo};
use brickless_image::tlv::kind;
use brickless_image::trailer::TrailerOffsets;
use brickless_image::{ImageView, TlvArea};
use clap::Args;
use miette::{miette, IntoDiagnostic, Result};
use serde_json::{json, Value};

use super::{erased_arg, load_flat};

/// Arguments of `brickless image inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Print JSON: imgtool dumpinfo's fields (`header`, `tlv_area`, `trailer`) plus `brickless`.
    #[arg(long)]
    pub json: bool,
    /// Value erased flash reads as (fills HEX gaps and decodes trailer flags).
    #[arg(short = 'R', long = "erased-val", default_value = "0xff", value_parser = erased_arg)]
    pub erased_val: u8,
    /// Image file: BIN or Intel HEX (.hex).
    pub image: PathBuf,
}

fn tlv_area_json(area: Option<&TlvArea<'_>>) -> (Value, Vec<Value>) {
    let Some(area) = area else {
        return (json!({}), Vec::new());
    };
    let tlvs = area
        .iter()
        .filter_map(|t| t.ok())
        .map(|t| {
            json!({
                "type": t.kind,
                "type_name": kind::name(t.kind).unwrap_or("UNKNOWN"),
                "len": t.data.len(),
                "data": base16ct::lower::encode_string(t.data),
            })
        })
        .collect();
    (
        json!({"magic": area.magic, "tlv_tot": area.total_len()}),
        tlvs,
    )
}

/// The trailer fields as imgtool dumpinfo reads them: the last 16 bytes as magic, and the
/// flags only when the magic is valid.
fn trailer_json(bytes: &[u8], info: &ImageInfo) -> Value {
    if bytes.len() <= info.tlv_end as usize {
        return json!({});
    }
    let magic = &bytes[bytes.len().saturating_sub(16)..];
    let mut out = serde_json::Map::new();
    out.insert("magic".into(), json!(base16ct::lower::encode_string(magic)));
    let max_align = info.trailer.and_then(|t| t.max_align);
    let offsets = max_align.and_then(|a| TrailerOffsets::new(bytes.len() as u32, a));
    if let Some(off) = offsets {
        let byte = |o: u32| bytes.get(o as usize).copied();
        if let (Some(ok), Some(done), Some(info_byte)) =
            (byte(off.image_ok), byte(off.copy_done), byte(off.swap_info))
        {
            out.insert("image_ok".into(), json!(ok));
            out.insert("copy_done".into(), json!(done));
            out.insert("swap_info".into(), json!(info_byte));
        }
        if let Some(s) = bytes.get(off.swap_size as usize..off.swap_size as usize + 4) {
            out.insert(
                "swap_size".into(),
                json!(u32::from_le_bytes([s[0], s[1], s[2], s[3]])),
            );
        }
    }
    Value::Object(out)
}

fn inspect_json(path: &Path, bytes: &[u8], view: &ImageView<'_>, info: &ImageInfo) -> Value {
    let h = &info.header;
    let (prot_hdr, prot_tlvs) = tlv_area_json(view.protected.as_ref());
    let (hdr, tlvs) = tlv_area_json(Some(&view.unprotected));
    let key_hash = view
        .unprotected
        .find(kind::KEYHASH)
        .map(|t| base16ct::lower::encode_string(t.data));
    let trailer_state = info.trailer.map(|t| {
        json!({
            "max_align": t.max_align,
            "magic": format!("{:?}", t.state.magic).to_lowercase(),
            "image_ok": format!("{:?}", t.state.image_ok).to_lowercase(),
            "copy_done": format!("{:?}", t.state.copy_done).to_lowercase(),
            "swap_info": t.state.swap_info,
        })
    });
    json!({
        "filename": path.file_name().map(|n| n.to_string_lossy().into_owned()),
        "header": {
            "magic": h.magic,
            "load_addr": h.load_addr,
            "hdr_size": h.hdr_size,
            "protected_tlv_size": h.protect_tlv_size,
            "img_size": h.img_size,
            "flags": h.flags,
            "version": h.version.to_string(),
        },
        "tlv_area": {
            "tlv_hdr_prot": prot_hdr,
            "tlvs_prot": prot_tlvs,
            "tlv_hdr": hdr,
            "tlvs": tlvs,
        },
        "trailer": trailer_json(bytes, info),
        "brickless": {
            "file_size": info.total_len,
            "image_size": info.tlv_end,
            "computed_hash": base16ct::lower::encode_string(&info.computed_hash),
            "hash_matches": info.hash_matches,
            "key_hash": key_hash,
            "security_counter": info.security_counter,
            "trailer_state": trailer_state,
        },
    })
}

fn flag_names(flags: u32) -> String {
    use brickless_image::header::flags as f;
    let names = [
        (f::PIC, "PIC"),
        (f::ENCRYPTED_AES128, "ENCRYPTED_AES128"),
        (f::ENCRYPTED_AES256, "ENCRYPTED_AES256"),
        (f::NON_BOOTABLE, "NON_BOOTABLE"),
        (f::RAM_LOAD, "RAM_LOAD"),
        (f::ROM_FIXED, "ROM_FIXED"),
        (f::COMPRESSED_LZMA1, "COMPRESSED_LZMA1"),
        (f::COMPRESSED_LZMA2, "COMPRESSED_LZMA2"),
        (f::COMPRESSED_ARM_THUMB, "COMPRESSED_ARM_THUMB"),
    ];
    let set: Vec<&str> = names
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    if set.is_empty() {
        String::new()
    } else {
        format!(" ({})", set.join(" | "))
    }
}

fn print_human(path: &Path, doc: &Value, info: &ImageInfo) {
    let h = &info.header;
    println!("image {}", path.display());
    println!("  header");
    println!("    magic               0x{:08x}", h.magic);
    println!("    load_addr           0x{:x}", h.load_addr);
    println!("    hdr_size            0x{:x}", h.hdr_size);
    println!("    protected_tlv_size  0x{:x}", h.protect_tlv_size);
    println!(
        "    img_size            0x{:x} ({} bytes)",
        h.img_size, h.img_size
    );
    println!(
        "    flags               0x{:x}{}",
        h.flags,
        flag_names(h.flags)
    );
    println!("    version             {}", h.version);
    for (title, hdr_key, list_key) in [
        ("protected TLVs", "tlv_hdr_prot", "tlvs_prot"),
        ("TLVs", "tlv_hdr", "tlvs"),
    ] {
        let area = &doc["tlv_area"];
        let Some(magic) = area[hdr_key]["magic"].as_u64() else {
            println!("  {title}: none");
            continue;
        };
        println!(
            "  {title} (magic 0x{magic:04x}, area size 0x{:x})",
            area[hdr_key]["tlv_tot"].as_u64().unwrap_or(0)
        );
        for tlv in area[list_key].as_array().into_iter().flatten() {
            println!(
                "    {:<12} 0x{:02x} len 0x{:<3x} {}",
                tlv["type_name"].as_str().unwrap_or("?"),
                tlv["type"].as_u64().unwrap_or(0),
                tlv["len"].as_u64().unwrap_or(0),
                tlv["data"].as_str().unwrap_or("")
            );
        }
    }
    println!("  checks");
    println!(
        "    hash                {} ({})",
        base16ct::lower::encode_string(&info.computed_hash),
        if info.hash_matches {
            "matches the SHA256 TLV"
        } else {
            "DOES NOT match the SHA256 TLV"
        }
    );
    if let Some(k) = doc["brickless"]["key_hash"].as_str() {
        println!("    key hash            {k}");
    }
    if let Some(c) = info.security_counter {
        println!("    security counter    {c}");
    }
    println!(
        "    size                0x{:x} bytes of image in a 0x{:x}-byte file",
        info.tlv_end, info.total_len
    );
    let trailer = &doc["trailer"];
    match trailer["magic"].as_str() {
        None => println!("  trailer: none (image not padded to a slot)"),
        Some(magic) => {
            println!("  trailer");
            println!("    magic               {magic}");
            match info.trailer.filter(|t| t.max_align.is_some()) {
                None => println!("    (magic not recognised: other trailer fields not read)"),
                Some(t) => {
                    println!("    max_align           {}", t.max_align.unwrap_or(8));
                    println!("    image_ok            {:?}", t.state.image_ok);
                    println!("    copy_done           {:?}", t.state.copy_done);
                    match t.state.swap_info {
                        Some(v) => println!("    swap_info           0x{v:02x}"),
                        None => println!("    swap_info           unset"),
                    }
                    if let Some(s) = trailer["swap_size"].as_u64() {
                        println!("    swap_size           0x{s:x}");
                    }
                }
            }
        }
    }
}

pub(super) fn inspect_cmd(args: InspectArgs) -> Result<()> {
    let (bytes, _) = load_flat(&args.image, args.erased_val)?;
    let not_image = |e: &dyn std::fmt::Display| {
        miette!(
            help = "is this a signed image? `brickless image sign` makes one from a plain firmware",
            "{} is not an MCUboot image: {e}",
            args.image.display()
        )
    };
    let view = ImageView::parse(&bytes).map_err(|e| not_image(&e))?;
    let info = inspect(&bytes, args.erased_val).map_err(|e| not_image(&e))?;
    let doc = inspect_json(&args.image, &bytes, &view, &info);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&doc).into_diagnostic()?);
    } else {
        print_human(&args.image, &doc, &info);
    }
    Ok(())
}
