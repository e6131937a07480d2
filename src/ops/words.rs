//! Numbers and money as a person says them. Summaries (what Alexa reads back, the app and
//! the audit log show) and the speech catalog both use these.

/// "1 volume", "3 volumes".
pub fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// An amount in cents as it is said: "about 42 dollars", "less than a dollar",
/// "about 1,250 dollars". Whole units, rounded.
pub fn about_dollars(cents: u64) -> String {
    money(cents, "USD")
}

/// An amount in hundredths of `currency` as it is said, rounded to whole units ("about 42
/// dollars", "about 17 euros", "about 3 units of CHF" for a currency voxgate has no word
/// for).
pub fn money(hundredths: u64, currency: &str) -> String {
    let (one, many, small) = match currency {
        "USD" => ("dollar", "dollars", "less than a dollar"),
        "EUR" => ("euro", "euros", "less than a euro"),
        "GBP" => ("pound", "pounds", "less than a pound"),
        "JPY" => ("yen", "yen", "less than a yen"),
        _ => ("", "", ""),
    };
    let whole = (hundredths + 50) / 100;
    if one.is_empty() {
        return format!("about {} {currency}", thousands(whole));
    }
    match hundredths {
        0 => format!("0 {many}"),
        1..=49 => small.to_owned(),
        _ => format!(
            "about {} {}",
            thousands(whole),
            if whole == 1 { one } else { many }
        ),
    }
}

/// "about 42 dollars a month".
pub fn monthly(cents: u64) -> String {
    match cents {
        1..=99 => "less than a dollar a month".to_owned(),
        _ => format!("{} a month", about_dollars(cents)),
    }
}

/// "1,250".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_said_as_a_person_would() {
        assert_eq!(monthly(4210), "about 42 dollars a month");
        assert_eq!(monthly(120), "about 1 dollar a month");
        assert_eq!(monthly(40), "less than a dollar a month");
        assert_eq!(money(125_049, "USD"), "about 1,250 dollars");
        assert_eq!(money(1_700, "EUR"), "about 17 euros");
        assert_eq!(money(0, "USD"), "0 dollars");
        assert_eq!(money(300, "CHF"), "about 3 CHF");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(count(1, "volume", "volumes"), "1 volume");
        assert_eq!(count(3, "volume", "volumes"), "3 volumes");
    }
}
