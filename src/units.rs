//! Distinct quantities get distinct types: points (点数), yuan (元), point values (元/点).
//!
//! All are exact decimals (`rust_decimal`), never floats. Rounding happens only where a rule says
//! so, with [`round_half_up`] (四舍五入: half away from zero), and each caller documents its scale.

use rust_decimal::{Decimal, RoundingStrategy};
use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};

/// Appends `value` in plain decimal notation (as `Decimal`'s `Display` writes it, trailing zeros
/// kept), without going through the formatting machinery: the hot path of large outputs.
pub fn push_decimal(out: &mut String, value: Decimal) {
    let mantissa = value.mantissa();
    push_digits(out, mantissa < 0, mantissa.unsigned_abs(), value.scale());
}

/// Divides `n` by 10 and returns the digit taken off: u64 arithmetic when `n` fits (it nearly
/// always does), since u128 division is a slow library call.
#[inline]
fn pop_digit(n: &mut u128) -> u8 {
    match u64::try_from(*n) {
        Ok(small) => {
            *n = u128::from(small / 10);
            (small % 10) as u8
        }
        Err(_) => {
            let digit = (*n % 10) as u8;
            *n /= 10;
            digit
        }
    }
}

/// Appends `magnitude × 10^-scale` with `scale` decimals (and a minus sign when `negative`):
/// digits are written right to left, point included, in one pass.
#[inline]
fn push_digits(out: &mut String, negative: bool, magnitude: u128, scale: u32) {
    // 39 digits of a u128, a point, a sign and leading zeros up to scale 28 fit in 72 bytes.
    let mut text = [0u8; 72];
    let mut at = text.len();
    let mut put = |byte: u8| {
        at -= 1;
        text[at] = byte;
    };
    let mut n = magnitude;
    for _ in 0..scale {
        put(b'0' + pop_digit(&mut n));
    }
    if scale > 0 {
        put(b'.');
    }
    loop {
        put(b'0' + pop_digit(&mut n));
        if n == 0 {
            break;
        }
    }
    if negative {
        put(b'-');
    }
    // Only ASCII digits, '.' and '-' were written.
    out.push_str(std::str::from_utf8(&text[at..]).unwrap_or_default());
}

/// Appends `round_half_up(value, decimals).normalize()` (no trailing zeros) with integer
/// arithmetic on the magnitude — u64 when it fits, one u128 division otherwise — instead of the
/// decimal library's rounding. Same text (tested against it). `decimals` ≥ 28 just drops
/// trailing zeros.
pub fn push_rounded(out: &mut String, value: Decimal, decimals: u32) {
    let mut magnitude: u128 = value.mantissa().unsigned_abs();
    let mut scale = value.scale();
    if scale > decimals {
        // Half away from zero on the magnitude: a remainder of at least half the divisor rounds
        // up (`r >= p - r`, which cannot overflow).
        let drop = scale - decimals;
        magnitude = match u64::try_from(magnitude) {
            Ok(m) if drop <= 19 => {
                let p = 10u64.pow(drop);
                let (q, r) = (m / p, m % p);
                u128::from(q) + u128::from(r >= p - r)
            }
            // scale ≤ 28, so the divisor fits.
            _ => {
                let p = 10u128.pow(drop);
                let q = magnitude / p;
                let r = magnitude - q * p;
                q + u128::from(r >= p - r)
            }
        };
        scale = decimals;
    }
    // Trailing zeros dropped.
    while scale > 0 {
        let mut shorter = magnitude;
        if pop_digit(&mut shorter) != 0 {
            break;
        }
        magnitude = shorter;
        scale -= 1;
    }
    push_digits(out, value.mantissa() < 0 && magnitude != 0, magnitude, scale);
}

/// An amount of money as every output and the API write it: yuan rounded half-up to the fen,
/// always exactly 2 decimals, and zero as `0.00`, never `-0.00`. The one money format.
pub fn format_yuan(amount: Decimal) -> String {
    let mut out = String::with_capacity(16);
    push_yuan(&mut out, amount);
    out
}

/// Appends [`format_yuan`]'s text to `out`.
pub fn push_yuan(out: &mut String, amount: Decimal) {
    push_fixed(out, amount, 2);
}

/// Points (点数) as every output and the API write them: rounded half-up to the policy's
/// `points_decimals`, always exactly that many decimals, and zero never negative. The one points
/// format.
pub fn format_points(points: Decimal, points_decimals: u32) -> String {
    let mut out = String::with_capacity(16);
    push_fixed(&mut out, points, points_decimals);
    out
}

/// Appends [`format_points`]'s text to `out`.
pub fn push_points(out: &mut String, points: Decimal, points_decimals: u32) {
    push_fixed(out, points, points_decimals);
}

/// A point value (点值, yuan per point) as published: rounded half-up to the policy's
/// `point_value_decimals`, always exactly that many decimals. The one point-value format (the
/// exact, unrounded value is written only where a column says `exact`).
pub fn format_point_value(value: Decimal, point_value_decimals: u32) -> String {
    let mut out = String::with_capacity(16);
    push_fixed(&mut out, value, point_value_decimals);
    out
}

/// Appends `value` rounded half-up to exactly `decimals` places (trailing zeros written, so
/// `1150` at 2 decimals is `1150.00`), never as a negative zero: what every fixed-decimal
/// quantity (money, points, point values) is written with.
pub fn push_fixed(out: &mut String, value: Decimal, decimals: u32) {
    let rounded = round_half_up(value, decimals);
    let magnitude = rounded.mantissa().unsigned_abs();
    let scale = rounded.scale();
    // A rounded zero has no sign.
    push_digits(out, rounded.mantissa() < 0 && magnitude != 0, magnitude, scale);
    if decimals > scale {
        if scale == 0 {
            out.push('.');
        }
        for _ in scale..decimals {
            out.push('0');
        }
    }
}

/// Rounds half away from zero (四舍五入) to `decimals` places.
pub fn round_half_up(value: Decimal, decimals: u32) -> Decimal {
    value.round_dp_with_strategy(decimals, RoundingStrategy::MidpointAwayFromZero)
}

macro_rules! decimal_unit {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub Decimal);

        impl $name {
            pub const ZERO: $name = $name(Decimal::ZERO);

            pub fn value(self) -> Decimal {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.normalize().fmt(f)
            }
        }

        impl Add for $name {
            type Output = $name;
            fn add(self, other: $name) -> $name {
                $name(self.0 + other.0)
            }
        }

        impl Sub for $name {
            type Output = $name;
            fn sub(self, other: $name) -> $name {
                $name(self.0 - other.0)
            }
        }

        impl Neg for $name {
            type Output = $name;
            fn neg(self) -> $name {
                $name(-self.0)
            }
        }

        impl AddAssign for $name {
            fn add_assign(&mut self, other: $name) {
                self.0 += other.0;
            }
        }

        impl SubAssign for $name {
            fn sub_assign(&mut self, other: $name) {
                self.0 -= other.0;
            }
        }

        impl Sum for $name {
            fn sum<I: Iterator<Item = $name>>(iter: I) -> $name {
                $name(iter.map(|v| v.0).sum())
            }
        }
    };
}

decimal_unit!(
    /// Points (点数): a case's or hospital's share of the regional budget.
    Points
);
decimal_unit!(
    /// Money in yuan (元). Settlement amounts are held to the fen (2 decimals).
    Yuan
);
decimal_unit!(
    /// Point value (点值): yuan per point.
    PointValue
);

impl Yuan {
    /// Rounded half-up to the fen.
    pub fn to_fen(self) -> Yuan {
        Yuan(round_half_up(self.0, 2))
    }
}

impl Points {
    /// Money for these points at a point value (unrounded).
    pub fn at(self, value: PointValue) -> Yuan {
        Yuan(self.0 * value.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_has_two_decimals_and_no_negative_zero() {
        use rust_decimal_macros::dec;
        assert_eq!(format_yuan(dec!(17500000.0)), "17500000.00");
        assert_eq!(format_yuan(dec!(367398.9)), "367398.90");
        assert_eq!(format_yuan(dec!(0)), "0.00");
        assert_eq!(format_yuan(-dec!(0.00)), "0.00");
        assert_eq!(format_yuan(dec!(-0.004)), "0.00");
        assert_eq!(format_yuan(dec!(-0.005)), "-0.01");
        assert_eq!(format_yuan(dec!(-439433.87)), "-439433.87");
        assert_eq!(format_yuan(dec!(2.345)), "2.35");
    }
    use rust_decimal_macros::dec;

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(round_half_up(dec!(497.625), 2), dec!(497.63));
        assert_eq!(round_half_up(dec!(497.624), 2), dec!(497.62));
        assert_eq!(round_half_up(dec!(-0.005), 2), dec!(-0.01));
        assert_eq!(Yuan(dec!(0.125)).to_fen(), Yuan(dec!(0.13)));
    }

    #[test]
    fn push_decimal_matches_display() {
        for text in ["0", "0.00", "1", "-1", "12.5", "-0.05", "350000.00", "0.001", "123456789012345678.123456789", "-7.10"] {
            let value: Decimal = text.parse().unwrap();
            let mut out = String::new();
            push_decimal(&mut out, value);
            assert_eq!(out, value.to_string(), "{text}");
        }
    }

    #[test]
    fn push_rounded_matches_round_then_normalize() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mantissa = (next() % 2_000_000_001) as i64 - 1_000_000_000;
            let scale = (next() % 12) as u32;
            let decimals = (next() % 6) as u32;
            let value = Decimal::new(mantissa, scale);
            let mut fast = String::new();
            push_rounded(&mut fast, value, decimals);
            assert_eq!(fast, round_half_up(value, decimals).normalize().to_string(), "{value} to {decimals}");
        }
        let mut out = String::new();
        push_rounded(&mut out, dec!(-0.00005), 4);
        assert_eq!(out, round_half_up(dec!(-0.00005), 4).normalize().to_string());
        // Quotients carry 28 significant digits: the i128 path.
        for (a, b) in
            [(dec!(8008.73), dec!(7123.17)), (dec!(1), dec!(3)), (dec!(-2), dec!(3)), (dec!(12345.67), dec!(0.07)), (dec!(5), dec!(8))]
        {
            let value = a / b;
            for decimals in [0, 2, 4, 28] {
                let mut out = String::new();
                push_rounded(&mut out, value, decimals);
                assert_eq!(out, round_half_up(value, decimals).normalize().to_string(), "{value} to {decimals}");
            }
        }
        for _ in 0..20_000 {
            let hi = next() as u128 % (1u128 << 32);
            let mantissa = ((hi << 64) | u128::from(next())) as i128 * if next() % 2 == 0 { 1 } else { -1 };
            let value = Decimal::from_i128_with_scale(mantissa, (next() % 29) as u32);
            let decimals = (next() % 8) as u32;
            let mut fast = String::new();
            push_rounded(&mut fast, value, decimals);
            assert_eq!(fast, round_half_up(value, decimals).normalize().to_string(), "{value} to {decimals}");
        }
        // Full 64-bit magnitudes at every scale: the u64 path up to its edges.
        for _ in 0..20_000 {
            let mantissa = i128::from(next()) * if next() % 2 == 0 { 1 } else { -1 };
            let value = Decimal::from_i128_with_scale(mantissa, (next() % 29) as u32);
            let decimals = (next() % 22) as u32;
            let mut fast = String::new();
            push_rounded(&mut fast, value, decimals);
            assert_eq!(fast, round_half_up(value, decimals).normalize().to_string(), "{value} to {decimals}");
        }
    }

    #[test]
    fn points_and_point_values_have_their_decimals() {
        assert_eq!(format_points(dec!(1150), 2), "1150.00");
        assert_eq!(format_points(dec!(900.0), 2), "900.00");
        assert_eq!(format_points(dec!(3274.5), 2), "3274.50");
        assert_eq!(format_points(dec!(3274.555), 2), "3274.56");
        assert_eq!(format_points(dec!(-0.001), 2), "0.00");
        assert_eq!(format_points(dec!(-970.98), 2), "-970.98");
        assert_eq!(format_points(dec!(12.5), 0), "13");
        assert_eq!(format_point_value(dec!(21.45), 4), "21.4500");
        assert_eq!(format_point_value(dec!(14.891108851614618681546157617), 4), "14.8911");
        assert_eq!(format_point_value(dec!(19.5), 4), "19.5000");
    }

    proptest::proptest! {
        /// Over random amounts: exactly `decimals` decimals, never a negative zero, and the text
        /// reads back as the value rounded half-up.
        #[test]
        fn fixed_formats_hold_for_random_values(mantissa in proptest::num::i64::ANY, scale in 0u32..=20, decimals in 0u32..=8) {
            let value = Decimal::new(mantissa, scale);
            for (text, wanted) in [(format_yuan(value), 2), (format_points(value, decimals), decimals), (format_point_value(value, decimals), decimals)] {
                let fraction = text.split_once('.').map_or(0, |(_, f)| f.len() as u32);
                proptest::prop_assert_eq!(fraction, wanted, "{}", text);
                proptest::prop_assert!(!text.starts_with('-') || text.bytes().any(|b| (b'1'..=b'9').contains(&b)), "negative zero {}", text);
                proptest::prop_assert_eq!(Decimal::from_str_exact(&text).unwrap(), round_half_up(value, wanted));
            }
        }
    }

    #[test]
    fn points_at_a_point_value_are_money() {
        assert_eq!(Points(dec!(50000)).at(PointValue(dec!(10))), Yuan(dec!(500000)));
        assert_eq!(Points(dec!(1.5)).to_string(), "1.5");
    }
}
