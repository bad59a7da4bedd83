//! ISBN parsing: ISBN-10 or ISBN-13, with or without hyphens or spaces, checksum verified, and
//! normalised to ISBN-13 (the form stored and compared).

use std::fmt;

/// A checksum-valid ISBN, held as its 13 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Isbn(String);

/// Why a string is not an ISBN; the text is meant for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IsbnError {
    #[error("may contain only digits, hyphens, spaces and a final X")]
    BadCharacter,
    #[error("must have 10 or 13 digits")]
    BadLength,
    #[error("has a wrong check digit")]
    BadCheckDigit,
    #[error("an ISBN-13 must start with 978 or 979")]
    BadPrefix,
}

impl Isbn {
    pub fn parse(input: &str) -> Result<Isbn, IsbnError> {
        let compact: Vec<u8> = input
            .bytes()
            .filter(|b| *b != b'-' && *b != b' ')
            .map(|b| b.to_ascii_uppercase())
            .collect();
        let x_ok =
            |i: usize, b: u8| b.is_ascii_digit() || (b == b'X' && i == 9 && compact.len() == 10);
        if compact.iter().enumerate().any(|(i, &b)| !x_ok(i, b)) {
            return Err(IsbnError::BadCharacter);
        }
        match compact.len() {
            10 => {
                let sum: u32 = compact
                    .iter()
                    .enumerate()
                    .map(|(i, &b)| (10 - i as u32) * digit_value(b))
                    .sum();
                if sum % 11 != 0 {
                    return Err(IsbnError::BadCheckDigit);
                }
                let mut digits = b"978".to_vec();
                digits.extend_from_slice(&compact[..9]);
                digits.push(b'0' + isbn13_check_digit(&digits));
                Ok(Isbn(String::from_utf8_lossy(&digits).into_owned()))
            }
            13 => {
                if !(compact.starts_with(b"978") || compact.starts_with(b"979")) {
                    return Err(IsbnError::BadPrefix);
                }
                if isbn13_check_digit(&compact[..12]) != compact[12] - b'0' {
                    return Err(IsbnError::BadCheckDigit);
                }
                Ok(Isbn(String::from_utf8_lossy(&compact).into_owned()))
            }
            _ => Err(IsbnError::BadLength),
        }
    }

    /// The 13 digits, without hyphens.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The ISBN-10 form, which exists only for 978-prefixed ISBNs.
    pub fn to_isbn10(&self) -> Option<String> {
        let digits = self.0.as_bytes();
        if !digits.starts_with(b"978") {
            return None;
        }
        let body = &digits[3..12];
        let sum: u32 = body
            .iter()
            .enumerate()
            .map(|(i, &b)| (10 - i as u32) * u32::from(b - b'0'))
            .sum();
        let check = (11 - sum % 11) % 11;
        let mut out = String::from_utf8_lossy(body).into_owned();
        out.push(if check == 10 {
            'X'
        } else {
            char::from(b'0' + check as u8)
        });
        Some(out)
    }
}

fn digit_value(b: u8) -> u32 {
    if b == b'X' {
        10
    } else {
        u32::from(b - b'0')
    }
}

/// The check digit of the first 12 digits of an ISBN-13 (weights 1,3,1,3…).
fn isbn13_check_digit(first12: &[u8]) -> u8 {
    let sum: u32 = first12
        .iter()
        .enumerate()
        .map(|(i, &b)| u32::from(b - b'0') * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

impl fmt::Display for Isbn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_isbn13_with_and_without_hyphens() {
        let want = "9780306406157";
        for input in ["9780306406157", "978-0-306-40615-7", "978 0 306 40615 7"] {
            assert_eq!(
                Isbn::parse(input).map(|i| i.0),
                Ok(want.to_owned()),
                "{input}"
            );
        }
        assert!(Isbn::parse("979-10-90636-07-1").is_ok());
    }

    #[test]
    fn converts_isbn10_including_x_check_digits() {
        assert_eq!(
            Isbn::parse("0-306-40615-2").unwrap().as_str(),
            "9780306406157"
        );
        assert_eq!(Isbn::parse("0306406152").unwrap().as_str(), "9780306406157");
        // X check digit, upper or lower case.
        assert_eq!(
            Isbn::parse("0-8044-2957-X").unwrap().as_str(),
            "9780804429573"
        );
        assert_eq!(Isbn::parse("080442957x").unwrap().as_str(), "9780804429573");
        assert_eq!(
            Isbn::parse("9780804429573").unwrap().to_isbn10().as_deref(),
            Some("080442957X")
        );
    }

    #[test]
    fn rejects_bad_input_with_the_reason() {
        assert_eq!(Isbn::parse("9780306406158"), Err(IsbnError::BadCheckDigit));
        assert_eq!(Isbn::parse("0306406153"), Err(IsbnError::BadCheckDigit));
        assert_eq!(Isbn::parse("12345"), Err(IsbnError::BadLength));
        assert_eq!(Isbn::parse(""), Err(IsbnError::BadLength));
        assert_eq!(Isbn::parse("97803064061X7"), Err(IsbnError::BadCharacter));
        assert_eq!(Isbn::parse("X306406152"), Err(IsbnError::BadCharacter));
        assert_eq!(Isbn::parse("isbn 0306406152"), Err(IsbnError::BadCharacter));
        assert_eq!(Isbn::parse("1234567890128"), Err(IsbnError::BadPrefix));
    }

    #[test]
    fn isbn13_of_979_has_no_isbn10() {
        assert_eq!(Isbn::parse("9791090636071").unwrap().to_isbn10(), None);
    }

    /// Builds a valid ISBN-10 from nine digits.
    fn isbn10_from(body: &[u8]) -> String {
        let sum: u32 = body
            .iter()
            .enumerate()
            .map(|(i, d)| (10 - i as u32) * u32::from(*d))
            .sum();
        let check = (11 - sum % 11) % 11;
        let mut s: String = body.iter().map(|d| char::from(b'0' + d)).collect();
        s.push(if check == 10 {
            'X'
        } else {
            char::from(b'0' + check as u8)
        });
        s
    }

    proptest! {
        #[test]
        fn isbn10_converts_to_a_checksum_valid_isbn13_and_back(body in proptest::collection::vec(0u8..10, 9)) {
            let isbn10 = isbn10_from(&body);
            let isbn = Isbn::parse(&isbn10).unwrap();
            let digits = isbn.as_str().as_bytes();
            prop_assert_eq!(digits.len(), 13);
            let sum: u32 = digits.iter().enumerate()
                .map(|(i, &b)| u32::from(b - b'0') * if i % 2 == 0 { 1 } else { 3 }).sum();
            prop_assert_eq!(sum % 10, 0);
            prop_assert_eq!(Isbn::parse(isbn.as_str()).unwrap(), isbn.clone());
            prop_assert_eq!(isbn.to_isbn10(), Some(isbn10));
        }

        #[test]
        fn never_panics(s in "\\PC{0,20}") {
            let _ = Isbn::parse(&s);
        }
    }
}
