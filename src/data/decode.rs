//! Decoding image files to 8-bit grayscale, with size limits checked before allocation.
//!
//! The `image` crate reads PNG, JPEG, BMP, PGM/PNM and most TIFFs. It rejects palette-colour
//! TIFFs, which real face sets use (some JAFFE files are stored with a gray palette), so those
//! are decoded here through the `tiff` crate: the palette indices mapped through the TIFF's
//! colour map, then to luma.

use std::path::Path;

use image::GrayImage;

use crate::error::{Error, Result};

/// The largest side accepted, in pixels. Face images are a few hundred pixels; a header that
/// claims more is refused rather than allocated.
pub const MAX_SIDE: u32 = 16_384;
/// The largest decoded image accepted, in bytes.
pub const MAX_BYTES: u64 = 512 << 20;

fn bad(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::Data {
        path: path.display().to_string(),
        msg: msg.to_string(),
    }
}

/// Reads `path` as 8-bit grayscale (colour converted with Rec. 709 luma weights).
pub fn read_gray(path: &Path) -> Result<GrayImage> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| bad(path, format!("cannot open: {e}")))?
        .with_guessed_format()
        .map_err(|e| bad(path, format!("cannot read: {e}")))?;
    let is_tiff = reader.format() == Some(image::ImageFormat::Tiff);
    let mut reader = reader;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_BYTES);
    reader.limits(limits);
    let image = match reader.decode() {
        Ok(image) => image.to_luma8(),
        Err(image::ImageError::Unsupported(e)) if is_tiff => {
            read_palette_tiff(path).map_err(|palette_err| {
                bad(
                    path,
                    format!("unsupported TIFF ({e}); as a palette TIFF: {palette_err}"),
                )
            })?
        }
        Err(image::ImageError::Limits(e)) => {
            return Err(bad(
                path,
                format!(
                    "image too large ({e}); the limit is {MAX_SIDE} \
                pixels a side and {} MiB decoded",
                    MAX_BYTES >> 20
                ),
            ))
        }
        Err(e) => return Err(bad(path, format!("cannot decode: {e}"))),
    };
    if image.width() == 0 || image.height() == 0 {
        return Err(bad(path, "the image has no pixels"));
    }
    Ok(image)
}

/// An 8-bit palette TIFF as grayscale: index -> colour map (16-bit R, G, B) -> luma.
///
/// The `tiff` crate reads the colour map but refuses to decode palette pixels, so the file is
/// decoded from a copy whose PhotometricInterpretation is patched to BlackIsZero: the crate
/// then returns the raw 8-bit indices (decompressing whatever the file uses), which are mapped
/// here. The file on disk is not touched.
fn read_palette_tiff(path: &Path) -> std::result::Result<GrayImage, String> {
    let mut bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let ifd = Ifd::parse(&bytes)?;
    let (ty, count, at) = ifd.find(&bytes, 320).ok_or("no colour map")?;
    if ty != 3 || count != 768 {
        return Err(format!(
            "colour map of type {ty} with {count} entries, expected 768 SHORTs"
        ));
    }
    let offset = ifd.u32_at(&bytes, at).ok_or("truncated colour map")? as usize;
    let map: Vec<u16> = (0..768)
        .map(|i| {
            ifd.u16_at(&bytes, offset + 2 * i)
                .ok_or("truncated colour map")
        })
        .collect::<std::result::Result<_, _>>()?;
    match ifd.find(&bytes, 258) {
        Some((3, 1, at)) if ifd.u16_at(&bytes, at) == Some(8) => {}
        _ => return Err("only 8-bit palette TIFFs are supported".into()),
    }
    let (_, _, photometric) = ifd
        .find(&bytes, 262)
        .ok_or("no PhotometricInterpretation")?;
    // A SHORT value sits in the first two bytes of the value field: 1 is BlackIsZero.
    let one = if ifd.little {
        1u16.to_le_bytes()
    } else {
        1u16.to_be_bytes()
    };
    bytes[photometric..photometric + 2].copy_from_slice(&one);
    let mut decoder =
        tiff::decoder::Decoder::new(std::io::Cursor::new(&bytes)).map_err(|e| e.to_string())?;
    let (w, h) = decoder.dimensions().map_err(|e| e.to_string())?;
    if w > MAX_SIDE || h > MAX_SIDE || w == 0 || h == 0 {
        return Err(format!("{w}x{h} pixels is outside 1..={MAX_SIDE} a side"));
    }
    let indices = match decoder.read_image().map_err(|e| e.to_string())? {
        tiff::decoder::DecodingResult::U8(v) => v,
        _ => return Err("palette indices are not 8-bit".into()),
    };
    if indices.len() != (w * h) as usize {
        return Err(format!("{} pixels for {w}x{h}", indices.len()));
    }
    // The colour map lists all reds, then all greens, then all blues, 16 bits each.
    let luma: Vec<u8> = (0..256)
        .map(|i| {
            let (r, g, b) = (map[i] as f64, map[256 + i] as f64, map[512 + i] as f64);
            ((0.2126 * r + 0.7152 * g + 0.0722 * b) / 257.0)
                .round()
                .clamp(0.0, 255.0) as u8
        })
        .collect();
    let pixels = indices.iter().map(|&i| luma[i as usize]).collect();
    GrayImage::from_raw(w, h, pixels).ok_or_else(|| "pixel buffer size".to_string())
}

/// The first image file directory of a classic TIFF: just enough to find a tag.
struct Ifd {
    little: bool,
    offset: usize,
    count: usize,
}

impl Ifd {
    fn parse(b: &[u8]) -> std::result::Result<Self, String> {
        let little = match b.get(..2) {
            Some(b"II") => true,
            Some(b"MM") => false,
            _ => return Err("not a classic TIFF header".into()),
        };
        let mut ifd = Self {
            little,
            offset: 0,
            count: 0,
        };
        ifd.offset = ifd.u32_at(b, 4).ok_or("truncated header")? as usize;
        ifd.count = ifd.u16_at(b, ifd.offset).ok_or("truncated directory")? as usize;
        Ok(ifd)
    }

    fn u16_at(&self, b: &[u8], i: usize) -> Option<u16> {
        let v = [*b.get(i)?, *b.get(i + 1)?];
        Some(if self.little {
            u16::from_le_bytes(v)
        } else {
            u16::from_be_bytes(v)
        })
    }

    fn u32_at(&self, b: &[u8], i: usize) -> Option<u32> {
        let v = [*b.get(i)?, *b.get(i + 1)?, *b.get(i + 2)?, *b.get(i + 3)?];
        Some(if self.little {
            u32::from_le_bytes(v)
        } else {
            u32::from_be_bytes(v)
        })
    }

    /// (type, count, position of the value field) of `tag`.
    fn find(&self, b: &[u8], tag: u16) -> Option<(u16, u32, usize)> {
        (0..self.count)
            .map(|e| self.offset + 2 + 12 * e)
            .find_map(|at| {
                (self.u16_at(b, at)? == tag)
                    .then(|| Some((self.u16_at(b, at + 2)?, self.u32_at(b, at + 4)?, at + 8)))?
            })
    }
}
