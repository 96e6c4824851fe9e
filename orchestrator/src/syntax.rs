//! Syntax of the identifiers an application file names: AWS resource ids, instance types,
//! addresses, KMS keys. Each check returns why a value is wrong, to be shown at its node.

use std::net::Ipv4Addr;

/// `^[a-z0-9][a-z0-9-]{0,62}$`: server ids and group names.
pub fn check_id(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{value}` must be 1 to 63 lowercase letters, digits or hyphens, starting with a letter or digit"
        ))
    }
}

/// `^[a-z][a-z0-9-]{0,62}$`: the application name, which stack and AMI names derive from.
pub fn check_app_name(value: &str) -> Result<(), String> {
    let ok = value.starts_with(|c: char| c.is_ascii_lowercase()) && check_id(value).is_ok();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "application name `{value}` must be 1 to 63 lowercase letters, digits or hyphens, starting with a letter"
        ))
    }
}

/// `prefix-` followed by 8 or 17 lowercase hex digits (subnet-, sg-, vpc-, ami-).
pub fn check_aws_id(value: &str, prefix: &str) -> Result<(), String> {
    let hex = value
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'));
    match hex {
        Some(h)
            if (h.len() == 8 || h.len() == 17)
                && h.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "`{value}` is not a valid {prefix} id ({prefix}- followed by 8 or 17 lowercase hex digits)"
        )),
    }
}

/// Instance type syntax: a family with a generation digit, a dot, and a size
/// (`m5.large`, `c7gn.16xlarge`, `u-6tb1.metal`, `m7i.metal-48xl`, `mac2-m2pro.metal`).
pub fn check_instance_type(value: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "`{value}` is not an EC2 instance type (family and size such as m5.large, r5.xlarge, c7g.16xlarge)"
        ))
    };
    let Some((family, size)) = value.split_once('.') else {
        return bad();
    };
    let family_ok = family.starts_with(|c: char| c.is_ascii_lowercase())
        && family.chars().any(|c| c.is_ascii_digit())
        && family
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !family.ends_with('-');
    let size_ok = match size {
        "nano" | "micro" | "small" | "medium" | "large" | "xlarge" | "metal" => true,
        s if s.starts_with("metal-") => s["metal-".len()..]
            .strip_suffix("xl")
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())),
        s => s.strip_suffix("xlarge").is_some_and(|n| {
            !n.is_empty() && !n.starts_with('0') && n.chars().all(|c| c.is_ascii_digit())
        }),
    };
    if family_ok && size_ok { Ok(()) } else { bad() }
}

/// An IPv4 address a VPC subnet can hold: RFC 1918 or the shared 100.64.0.0/10 range.
pub fn check_private_ipv4(value: &str) -> Result<Ipv4Addr, String> {
    let ip: Ipv4Addr = value.parse().map_err(|_| {
        format!("`{value}` is not an IPv4 address in dotted-quad form such as 10.0.1.20")
    })?;
    let [a, b, _, _] = ip.octets();
    let shared = a == 100 && (64..128).contains(&b);
    if ip.is_private() || shared {
        Ok(ip)
    } else {
        Err(format!(
            "`{value}` is not a private IPv4 address (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or 100.64.0.0/10)"
        ))
    }
}

/// A KMS key reference: key id (UUID or multi-Region `mrk-`), `alias/...`, or a key/alias ARN.
pub fn check_kms_key(value: &str) -> Result<(), String> {
    let is_uuid = |s: &str| {
        let parts: Vec<&str> = s.split('-').collect();
        parts.len() == 5
            && parts
                .iter()
                .zip([8, 4, 4, 4, 12])
                .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
    };
    let is_mrk = |s: &str| {
        s.strip_prefix("mrk-")
            .is_some_and(|h| h.len() == 32 && h.chars().all(|c| c.is_ascii_hexdigit()))
    };
    let is_alias = |s: &str| {
        s.strip_prefix("alias/").is_some_and(|a| {
            !a.is_empty()
                && a.len() <= 250
                && !a.starts_with("aws/")
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-'))
        })
    };
    let is_arn = |s: &str| {
        let parts: Vec<&str> = s.splitn(6, ':').collect();
        parts.len() == 6
            && parts[0] == "arn"
            && parts[1].starts_with("aws")
            && parts[2] == "kms"
            && !parts[3].is_empty()
            && parts[4].len() == 12
            && parts[4].chars().all(|c| c.is_ascii_digit())
            && (parts[5]
                .strip_prefix("key/")
                .is_some_and(|k| is_uuid(k) || is_mrk(k))
                || is_alias(parts[5]))
    };
    if is_uuid(value) || is_mrk(value) || is_alias(value) || is_arn(value) {
        Ok(())
    } else {
        Err(format!(
            "`{value}` is not a KMS key reference (a key id, alias/<name>, or a key or alias ARN); \
             AWS-managed aliases (alias/aws/...) cannot encrypt shared snapshots"
        ))
    }
}

/// EC2 key pair names: 1 to 255 printable ASCII characters.
pub fn check_key_name(value: &str) -> Result<(), String> {
    if !value.is_empty()
        && value.len() <= 255
        && value.chars().all(|c| c.is_ascii_graphic() || c == ' ')
    {
        Ok(())
    } else {
        Err(format!(
            "`{value}` is not an EC2 key pair name (1 to 255 printable ASCII characters)"
        ))
    }
}

/// IAM instance profile names: 1 to 128 of letters, digits and `+=,.@_-`.
pub fn check_instance_profile(value: &str) -> Result<(), String> {
    if value.starts_with("arn:") {
        return Err(format!(
            "`{value}`: give the instance profile's name, not its ARN"
        ));
    }
    if !value.is_empty()
        && value.len() <= 128
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
    {
        Ok(())
    } else {
        Err(format!(
            "`{value}` is not an IAM instance profile name (1 to 128 letters, digits or +=,.@_-)"
        ))
    }
}

/// CloudFormation logical ids: alphanumeric, bounded so derived names (`<id>ImageId`) still fit.
pub fn check_logical_id(value: &str) -> Result<(), String> {
    if !value.is_empty() && value.len() <= 200 && value.chars().all(|c| c.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(format!(
            "`{value}` is not a CloudFormation logical id (1 to 200 ASCII letters and digits, nothing else)"
        ))
    }
}

/// `sql-01` -> `Sql01`: the logical id derived from a server id or group name.
pub fn pascal_case(id: &str) -> String {
    id.split('-')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            let first = chars.next().map(|c| c.to_ascii_uppercase()).into_iter();
            first.chain(chars).collect::<String>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_ids_take_8_or_17_hex_digits() {
        assert!(check_aws_id("subnet-0a1b2c3d4e5f60718", "subnet").is_ok());
        assert!(check_aws_id("sg-0a1b2c3d", "sg").is_ok());
        assert!(check_aws_id("sg-0a1b2c3", "sg").is_err());
        assert!(check_aws_id("sg-0A1B2C3D", "sg").is_err());
        assert!(check_aws_id("subnet-0a1b2c3d", "sg").is_err());
        assert!(check_aws_id("vpc-0a1b2c3d4e5f6071", "vpc").is_err());
    }

    #[test]
    fn instance_types() {
        for ok in [
            "m5.large",
            "r5.xlarge",
            "c7gn.16xlarge",
            "t3.micro",
            "u-6tb1.metal",
            "m7i.metal-48xl",
            "mac2-m2pro.metal",
            "x2iedn.32xlarge",
        ] {
            assert!(check_instance_type(ok).is_ok(), "{ok}");
        }
        for bad in [
            "m5",
            "large",
            "M5.large",
            "m5.huge",
            "m.large",
            "m5.0xlarge",
            "m5.large.x",
            "m5-.large",
            "m5.xlarge2",
        ] {
            assert!(check_instance_type(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn private_addresses() {
        assert!(check_private_ipv4("10.0.1.20").is_ok());
        assert!(check_private_ipv4("172.31.255.1").is_ok());
        assert!(check_private_ipv4("100.64.0.9").is_ok());
        assert!(check_private_ipv4("8.8.8.8").is_err());
        assert!(check_private_ipv4("10.0.1").is_err());
        assert!(check_private_ipv4("10.0.1.256").is_err());
    }

    #[test]
    fn kms_keys() {
        assert!(check_kms_key("alias/migration").is_ok());
        assert!(check_kms_key("1234abcd-12ab-34cd-56ef-1234567890ab").is_ok());
        assert!(
            check_kms_key(
                "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
            )
            .is_ok()
        );
        assert!(check_kms_key("arn:aws:kms:us-east-1:111122223333:alias/migration").is_ok());
        assert!(check_kms_key("mrk-1234abcd12ab34cd56ef1234567890ab").is_ok());
        assert!(check_kms_key("migration").is_err());
        assert!(check_kms_key("alias/aws/ebs").is_err());
    }

    #[test]
    fn names() {
        assert_eq!(pascal_case("sql-01"), "Sql01");
        assert_eq!(pascal_case("dc01"), "Dc01");
        assert!(check_id("web-1").is_ok());
        assert!(check_id("-web").is_err());
        assert!(check_id("Web").is_err());
        assert!(check_app_name("1app").is_err());
        assert!(check_logical_id("SqlServer01").is_ok());
        assert!(check_logical_id("Sql_Server").is_err());
    }
}
