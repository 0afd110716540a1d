//! The bench's chart: one horizontal bar per configuration, its throughput as a share of
//! the untraced run, labelled with the added µs per request; drawn on an RGB canvas with a
//! built-in 5×7 pixel font and written as a PNG (zlib from flate2, CRC-32 per chunk).
use std::io::Write as _;

use anyhow::Result;
use flate2::{Compression, Crc, write::ZlibEncoder};

use super::report::{Row, Tracing};

const WIDTH: usize = 1000;
const MARGIN: usize = 20;
/// Pixels per font pixel.
const SCALE: usize = 2;
const ROW_HEIGHT: usize = 48;
const TOP: usize = 70;
/// The bar scale's end: a share of 110%.
const FULL_SCALE: f64 = 1.1;

const WHITE: [u8; 3] = [255, 255, 255];
const BLACK: [u8; 3] = [20, 20, 20];
const GRID: [u8; 3] = [210, 210, 210];
const GREY: [u8; 3] = [150, 150, 150];
const BLUE: [u8; 3] = [40, 110, 200];
const ORANGE: [u8; 3] = [230, 120, 30];

/// The chart of `rows` (as in the report) as PNG bytes.
pub fn png(title: &str, rows: &[Row]) -> Result<Vec<u8>> {
    let height = TOP + rows.len() * ROW_HEIGHT + 40;
    let mut canvas = Canvas::new(WIDTH, height);
    canvas.text(MARGIN, 12, title, BLACK);
    canvas.text(
        MARGIN,
        36,
        "THROUGHPUT AS A SHARE OF UNTRACED (BAR), ADDED US PER REQUEST (RIGHT)",
        GREY,
    );
    let bar_width = WIDTH - 2 * MARGIN - 240;
    let x_of = |share: f64| {
        MARGIN + (share.clamp(0.0, FULL_SCALE) / FULL_SCALE * bar_width as f64) as usize
    };
    let bottom = TOP + rows.len() * ROW_HEIGHT;
    for percent in [0, 25, 50, 75, 100] {
        let x = x_of(f64::from(percent) / 100.0);
        canvas.rect(x, TOP - 4, 1, bottom - TOP + 4, GRID);
        canvas.text(
            x.saturating_sub(8),
            bottom + 6,
            &format!("{percent}%"),
            GREY,
        );
    }
    for (i, row) in rows.iter().enumerate() {
        let y = TOP + i * ROW_HEIGHT;
        canvas.text(MARGIN, y, &row.config.name(), BLACK);
        let (share, color) = match row.config.tracing {
            Tracing::Off => (Some(1.0), GREY),
            Tracing::Others => (row.share, ORANGE),
            _ => (row.share, BLUE),
        };
        let Some(share) = share else { continue };
        let end = x_of(share);
        canvas.rect(MARGIN, y + 18, end - MARGIN, 20, color);
        let label = match row.added_us {
            Some(added) => format!("{:.1}%  +{added:.2} US", 100.0 * share),
            None => format!("{:.0}%", 100.0 * share),
        };
        canvas.text(x_of(FULL_SCALE) + 10, y + 22, &label, BLACK);
    }
    canvas.encode()
}

/// An RGB image.
struct Canvas {
    width: usize,
    height: usize,
    pixels: Vec<[u8; 3]>,
}

impl Canvas {
    fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            pixels: vec![WHITE; width * height],
        }
    }

    fn rect(&mut self, x: usize, y: usize, w: usize, h: usize, color: [u8; 3]) {
        for row in y..(y + h).min(self.height) {
            for col in x..(x + w).min(self.width) {
                self.pixels[row * self.width + col] = color;
            }
        }
    }

    /// Writes `text` (upper-cased; characters without a glyph show as `?`) with its top
    /// left corner at `(x, y)`.
    fn text(&mut self, x: usize, y: usize, text: &str, color: [u8; 3]) {
        let advance = 6 * SCALE;
        for (i, c) in text.chars().flat_map(char::to_uppercase).enumerate() {
            let rows = glyph(c);
            for (dy, bits) in rows.iter().enumerate() {
                for dx in 0..5 {
                    if bits & (0b10000 >> dx) != 0 {
                        self.rect(
                            x + i * advance + dx * SCALE,
                            y + dy * SCALE,
                            SCALE,
                            SCALE,
                            color,
                        );
                    }
                }
            }
        }
    }

    /// The image as a PNG: 8-bit RGB, no filtering, one IDAT chunk.
    fn encode(&self) -> Result<Vec<u8>> {
        let mut raw = Vec::with_capacity(self.height * (1 + 3 * self.width));
        for row in self.pixels.chunks(self.width) {
            raw.push(0);
            raw.extend(row.iter().flatten());
        }
        let mut zlib = ZlibEncoder::new(Vec::new(), Compression::default());
        zlib.write_all(&raw)?;
        let data = zlib.finish()?;
        let mut header = Vec::with_capacity(13);
        header.extend_from_slice(&u32::try_from(self.width)?.to_be_bytes());
        header.extend_from_slice(&u32::try_from(self.height)?.to_be_bytes());
        // Bit depth 8, colour type 2 (RGB), deflate, no filter method, no interlace.
        header.extend_from_slice(&[8, 2, 0, 0, 0]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        chunk(&mut png, b"IHDR", &header)?;
        chunk(&mut png, b"IDAT", &data)?;
        chunk(&mut png, b"IEND", &[])?;
        Ok(png)
    }
}

/// Appends a PNG chunk: length, type, data, CRC-32 of type and data.
fn chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) -> Result<()> {
    png.extend_from_slice(&u32::try_from(data.len())?.to_be_bytes());
    png.extend_from_slice(kind);
    png.extend_from_slice(data);
    let mut crc = Crc::new();
    crc.update(kind);
    crc.update(data);
    png.extend_from_slice(&crc.sum().to_be_bytes());
    Ok(())
}

/// The 5×7 glyph of `c`: seven rows, the leftmost pixel in bit 4.
fn glyph(c: char) -> [u8; 7] {
    match c {
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1E],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        ' ' => [0; 7],
        '.' => [0, 0, 0, 0, 0, 0x0C, 0x0C],
        ',' => [0, 0, 0, 0, 0x0C, 0x04, 0x08],
        ':' => [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '+' => [0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0],
        '-' => [0, 0, 0, 0x1F, 0, 0, 0],
        '=' => [0, 0, 0x1F, 0, 0x1F, 0, 0],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        '/' => [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0],
        '\'' => [0x0C, 0x04, 0x08, 0, 0, 0, 0],
        _ => [0x0E, 0x11, 0x01, 0x02, 0x04, 0, 0x04],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::{Config, Program};

    fn row(tracing: Tracing, share: Option<f64>) -> Row {
        Row {
            config: Config {
                program: Program::Hello,
                tracing,
            },
            rps: Some(1.0),
            share,
            share_range: None,
            added_us: share.map(|_| 1.5),
            p50_us: None,
            p99_us: None,
            cpu_us: None,
            added_cpu_us: None,
            cpu_ms_per_10k: None,
            peak_rss_mib: None,
            requests: 0,
            spans: None,
            dropped: None,
            probes: None,
            single_stepped: None,
        }
    }

    #[test]
    fn writes_a_well_formed_png() {
        let rows = [
            row(Tracing::Off, None),
            row(Tracing::Server, Some(0.9)),
            row(Tracing::Others, Some(0.2)),
        ];
        let png = png("TEST", &rows).expect("encodes");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR first: length 13, then the width and height.
        assert_eq!(&png[8..16], b"\x00\x00\x00\x0dIHDR");
        assert_eq!(&png[16..20], &(WIDTH as u32).to_be_bytes());
        let height = (TOP + 3 * ROW_HEIGHT + 40) as u32;
        assert_eq!(&png[20..24], &height.to_be_bytes());
        assert!(
            png.ends_with(b"IEND\xae\x42\x60\x82"),
            "IEND with its fixed CRC"
        );
        // The IDAT data inflates to one filter byte and a row of pixels per line.
        let idat = png.windows(4).position(|w| w == b"IDAT").expect("IDAT");
        let len = u32::from_be_bytes(png[idat - 4..idat].try_into().expect("4 bytes")) as usize;
        let mut raw = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::ZlibDecoder::new(&png[idat + 4..idat + 4 + len]),
            &mut raw,
        )
        .expect("inflates");
        assert_eq!(raw.len(), height as usize * (1 + 3 * WIDTH));
        // Some pixels of each bar's colour.
        let has = |color: [u8; 3]| {
            raw.chunks(1 + 3 * WIDTH)
                .any(|line| line[1..].chunks(3).any(|p| p == color))
        };
        assert!(has(BLUE) && has(ORANGE) && has(GREY));
    }
}
