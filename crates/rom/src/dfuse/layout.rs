//! The DfuSe memory-layout string an alternate setting carries as its interface name
//! (ST UM0424 §4.3.2), e.g. `@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg`:
//! a name, then one or more `/0x<start>/` groups of `<count>*<size><multiplier><type>`
//! segments. Parsed without allocation: [`MemoryLayout::parse`] checks the whole string, then
//! [`MemoryLayout::segments`] and [`MemoryLayout::page_at`] walk it again.

/// What a memory-layout string gets wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// The string does not start with '@'.
    #[error("memory layout does not start with '@'")]
    MissingAt,
    /// No `/0x<address>/` group follows the name.
    #[error("memory layout has no '/0x<address>/' group")]
    NoGroup,
    /// An address is not `0x` followed by hex digits.
    #[error("bad start address at byte {at}")]
    BadAddress {
        /// Byte offset in the layout string where the `/0x` group starts.
        at: usize,
    },
    /// A segment is not `<count>*<size><multiplier><type>`.
    #[error("bad segment at byte {at}: expected <count>*<size><B|K|M| ><a..g>")]
    BadSegment {
        /// Byte offset in the layout string where the segment starts.
        at: usize,
    },
    /// A page size or count of zero.
    #[error("zero page size or count at byte {at}")]
    ZeroSize {
        /// Byte offset in the layout string where the segment starts.
        at: usize,
    },
    /// A group extends past the 32-bit address space.
    #[error("segment at byte {at} runs past 4 GiB")]
    Overflow {
        /// Byte offset in the layout string where the segment starts.
        at: usize,
    },
}

/// What a segment's pages allow (the low three bits of the type letter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attributes(pub u8);

impl Attributes {
    /// Can be read with UPLOAD.
    pub fn readable(self) -> bool {
        self.0 & 1 != 0
    }
    /// Can be erased.
    pub fn erasable(self) -> bool {
        self.0 & 2 != 0
    }
    /// Can be written with DNLOAD.
    pub fn writable(self) -> bool {
        self.0 & 4 != 0
    }
    /// The type letter as the string writes it (`a`..`g`).
    pub fn letter(self) -> char {
        (b'`' + (self.0 & 7)) as char
    }
}

/// A run of equal pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Address of the first page.
    pub start: u32,
    /// Number of pages.
    pub count: u32,
    /// Size of each page (the erase unit) in bytes.
    pub page_size: u32,
    /// What the pages allow.
    pub attributes: Attributes,
}

impl Segment {
    /// One past the last byte (saturating at 4 GiB).
    pub fn end(&self) -> u64 {
        u64::from(self.start) + u64::from(self.count) * u64::from(self.page_size)
    }
}

/// One erase page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// First byte.
    pub start: u32,
    /// Size in bytes.
    pub size: u32,
    /// What the page allows.
    pub attributes: Attributes,
}

/// A checked memory-layout string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLayout<'a> {
    text: &'a str,
    name_end: usize,
}

impl<'a> MemoryLayout<'a> {
    /// A layout with no segments.
    pub const EMPTY: MemoryLayout<'static> = MemoryLayout {
        text: "@",
        name_end: 1,
    };

    /// Checks a layout string and returns a view over it.
    pub fn parse(text: &'a str) -> Result<Self, LayoutError> {
        if !text.starts_with('@') {
            return Err(LayoutError::MissingAt);
        }
        let name_end = text.find('/').ok_or(LayoutError::NoGroup)?;
        let layout = MemoryLayout { text, name_end };
        let mut any = false;
        for segment in layout.walk() {
            segment?;
            any = true;
        }
        if !any {
            return Err(LayoutError::NoGroup);
        }
        Ok(layout)
    }

    /// The memory's name (between '@' and the first '/'), trailing spaces removed.
    pub fn name(&self) -> &'a str {
        self.text[1..self.name_end].trim_end()
    }

    /// The whole string.
    pub fn as_str(&self) -> &'a str {
        self.text
    }

    /// The segments in string order.
    pub fn segments(&self) -> impl Iterator<Item = Segment> + 'a {
        self.walk().map_while(Result::ok)
    }

    /// The page holding `address`, if the layout covers it.
    pub fn page_at(&self, address: u32) -> Option<Page> {
        self.segments().find_map(|s| {
            let a = u64::from(address);
            if a < u64::from(s.start) || a >= s.end() {
                return None;
            }
            let index = (address - s.start) / s.page_size;
            Some(Page {
                start: s.start + index * s.page_size,
                size: s.page_size,
                attributes: s.attributes,
            })
        })
    }

    /// The first address the layout covers.
    pub fn start(&self) -> Option<u32> {
        self.segments().map(|s| s.start).min()
    }

    /// Total bytes covered by all segments.
    pub fn total_size(&self) -> u64 {
        self.segments()
            .map(|s| u64::from(s.count) * u64::from(s.page_size))
            .sum()
    }

    fn walk(&self) -> Walk<'a> {
        Walk {
            text: self.text.as_bytes(),
            pos: self.name_end,
            next_start: None,
        }
    }
}

struct Walk<'a> {
    text: &'a [u8],
    pos: usize,
    /// Address of the next segment inside the current group; None before a group header.
    next_start: Option<u64>,
}

impl Walk<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn decimal(&mut self) -> Option<u32> {
        let begin = self.pos;
        let mut value: u32 = 0;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            value = value.checked_mul(10)?.checked_add(u32::from(d - b'0'))?;
            self.pos += 1;
        }
        (self.pos > begin).then_some(value)
    }

    fn group_header(&mut self) -> Result<(), LayoutError> {
        // At '/': expect "/0x<hex>/".
        let at = self.pos;
        let bad = LayoutError::BadAddress { at };
        if self.text.get(self.pos..self.pos + 3) != Some(b"/0x") {
            return Err(bad);
        }
        self.pos += 3;
        let begin = self.pos;
        let mut value: u32 = 0;
        while let Some(c) = self.peek() {
            let digit = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => break,
            };
            value = value
                .checked_mul(16)
                .and_then(|v| v.checked_add(u32::from(digit)))
                .ok_or(bad)?;
            self.pos += 1;
        }
        if self.pos == begin || self.peek() != Some(b'/') {
            return Err(bad);
        }
        self.pos += 1;
        self.next_start = Some(u64::from(value));
        Ok(())
    }

    fn segment(&mut self, group_start: u64) -> Result<Segment, LayoutError> {
        let at = self.pos;
        let bad = LayoutError::BadSegment { at };
        let count = self.decimal().ok_or(bad)?;
        if self.peek() != Some(b'*') {
            return Err(bad);
        }
        self.pos += 1;
        let size = self.decimal().ok_or(bad)?;
        let multiplier: u32 = match self.peek() {
            Some(b'B' | b'b' | b' ') => 1,
            Some(b'K' | b'k') => 1024,
            Some(b'M' | b'm') => 1024 * 1024,
            _ => return Err(bad),
        };
        self.pos += 1;
        let attributes = match self.peek() {
            Some(t @ b'a'..=b'g') => Attributes(t & 7),
            _ => return Err(bad),
        };
        self.pos += 1;
        let page_size = size
            .checked_mul(multiplier)
            .ok_or(LayoutError::Overflow { at })?;
        if count == 0 || page_size == 0 {
            return Err(LayoutError::ZeroSize { at });
        }
        let end = group_start + u64::from(count) * u64::from(page_size);
        if end > 1 << 32 {
            return Err(LayoutError::Overflow { at });
        }
        self.next_start = Some(end);
        Ok(Segment {
            start: group_start as u32,
            count,
            page_size,
            attributes,
        })
    }
}

impl Iterator for Walk<'_> {
    type Item = Result<Segment, LayoutError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match (self.peek(), self.next_start) {
                (None, _) => return None,
                (Some(b'/'), _) => {
                    if let Err(e) = self.group_header() {
                        self.pos = self.text.len();
                        return Some(Err(e));
                    }
                }
                (Some(b','), Some(_)) => self.pos += 1,
                // Trailing spaces or NULs some devices append after the last segment.
                (Some(b' ' | 0), Some(_))
                    if self.text[self.pos..].iter().all(|&c| c == b' ' || c == 0) =>
                {
                    self.pos = self.text.len();
                    return None;
                }
                (Some(_), Some(start)) => {
                    let result = self.segment(start);
                    if result.is_err() {
                        self.pos = self.text.len();
                    }
                    return Some(result);
                }
                (Some(_), None) => {
                    let at = self.pos;
                    self.pos = self.text.len();
                    return Some(Err(LayoutError::BadAddress { at }));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f4_internal_flash() {
        let l =
            MemoryLayout::parse("@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg").unwrap();
        assert_eq!(l.name(), "Internal Flash");
        let s: Vec<Segment> = l.segments().collect();
        assert_eq!(s.len(), 3);
        assert_eq!(
            s[1],
            Segment {
                start: 0x0801_0000,
                count: 1,
                page_size: 64 * 1024,
                attributes: Attributes(7)
            }
        );
        assert_eq!(s[2].start, 0x0802_0000);
        assert_eq!(l.total_size(), 1024 * 1024);
        let p = l.page_at(0x0802_1234).unwrap();
        assert_eq!((p.start, p.size), (0x0802_0000, 128 * 1024));
        assert!(l.page_at(0x0810_0000).is_none());
        assert!(l.page_at(0x07FF_FFFF).is_none());
    }

    #[test]
    fn byte_sizes_and_several_groups() {
        let l = MemoryLayout::parse("@OTP Memory /0x1FFF7800/01*512 e,01*016 a/0x20000000/2*1Kg")
            .unwrap();
        let s: Vec<Segment> = l.segments().collect();
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].start, s[0].page_size), (0x1FFF_7800, 512));
        assert!(s[0].attributes.readable() && s[0].attributes.writable());
        assert!(!s[0].attributes.erasable());
        assert_eq!((s[1].start, s[1].page_size), (0x1FFF_7A00, 16));
        assert_eq!(s[1].attributes.letter(), 'a');
        assert_eq!(s[2].start, 0x2000_0000);
    }

    #[test]
    fn malformed_strings_are_named_errors() {
        assert_eq!(MemoryLayout::parse("Internal"), Err(LayoutError::MissingAt));
        assert_eq!(MemoryLayout::parse("@Internal"), Err(LayoutError::NoGroup));
        assert!(matches!(
            MemoryLayout::parse("@X/0x0800000G/1*1Kg"),
            Err(LayoutError::BadAddress { .. })
        ));
        assert!(matches!(
            MemoryLayout::parse("@X/0x08000000/1*1Kz"),
            Err(LayoutError::BadSegment { .. })
        ));
        assert!(matches!(
            MemoryLayout::parse("@X/0x08000000/1*1Q"),
            Err(LayoutError::BadSegment { .. })
        ));
        assert!(matches!(
            MemoryLayout::parse("@X/0x08000000/0*1Kg"),
            Err(LayoutError::ZeroSize { .. })
        ));
        assert!(matches!(
            MemoryLayout::parse("@X/0xFFFF0000/2*64Kg"),
            Err(LayoutError::Overflow { .. })
        ));
        assert!(matches!(
            MemoryLayout::parse("@X/0x08000000/99999999999*1Kg"),
            Err(LayoutError::BadSegment { .. })
        ));
    }

    #[test]
    fn never_panics_on_prefixes() {
        let s = "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg";
        for end in 0..s.len() {
            let _ = MemoryLayout::parse(&s[..end]);
        }
    }
}
