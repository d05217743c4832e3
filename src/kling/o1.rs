//! Kling O1's reference-media rules, which the SDKs implement in code (contract §2.3, "Kling O1
//! reference validation"): public http(s) media URLs, `<<<image_N>>>`/`<<<video_1>>>` markers that
//! match the references given, and the combinations the model refuses.

use super::Endpoint;
use super::violation::{Violation, ViolationKind, is_present};
use serde_json::{Map, Value};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub(super) fn check(_endpoint: Endpoint, body: &Map<String, Value>, out: &mut Vec<Violation>) {
    let push = |out: &mut Vec<Violation>, field: &str, message: String| {
        out.push(Violation::new(field, ViolationKind::Conditional, message));
    };
    let str_of = |name: &str| body.get(name).and_then(Value::as_str).filter(|s| !s.trim().is_empty());
    let prompt = str_of("prompt").unwrap_or("");
    let images: Vec<&str> = body
        .get("reference_image_urls")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let video = str_of("reference_video_url");

    for name in ["first_frame_image_url", "last_frame_image_url"] {
        if let Some(url) = str_of(name)
            && let Err(why) = public_media_url(url, &["jpg", "jpeg", "png"])
        {
            push(out, name, format!("{name} {why}"));
        }
    }
    for (i, url) in images.iter().enumerate() {
        if let Err(why) = public_media_url(url, &["jpg", "jpeg", "png"]) {
            push(out, "reference_image_urls", format!("reference_image_urls[{i}] {why}"));
        }
    }
    if str_of("last_frame_image_url").is_some() && (!images.is_empty() || video.is_some()) {
        push(
            out,
            "last_frame_image_url",
            "last_frame_image_url cannot be combined with reference_image_urls or reference_video_url".into(),
        );
    }
    let image_markers = markers(prompt, "image");
    for i in 1..=images.len() {
        if !image_markers.contains(&i) {
            push(
                out,
                "prompt",
                format!("prompt must reference each reference image: <<<image_{i}>>> is missing"),
            );
        }
    }
    for n in &image_markers {
        if *n == 0 || *n > images.len() {
            push(
                out,
                "prompt",
                format!(
                    "prompt refers to <<<image_{n}>>> but {} reference image(s) are given",
                    images.len()
                ),
            );
        }
    }
    let video_markers = markers(prompt, "video");
    match video {
        None => {
            for name in ["reference_video_type", "preserve_reference_video_audio"] {
                if body.contains_key(name) {
                    push(out, name, format!("{name} requires reference_video_url"));
                }
            }
            if !video_markers.is_empty() {
                push(
                    out,
                    "prompt",
                    "prompt contains a <<<video_…>>> marker but no reference_video_url is given".into(),
                );
            }
        }
        Some(url) => {
            if let Err(why) = public_media_url(url, &["mp4", "mov"]) {
                push(out, "reference_video_url", format!("reference_video_url {why}"));
            }
            if images.len() > 4 {
                push(
                    out,
                    "reference_image_urls",
                    "reference_image_urls must contain at most 4 items with reference_video_url".into(),
                );
            }
            if !video_markers.contains(&1) {
                push(out, "prompt", "prompt must reference the video as <<<video_1>>>".into());
            }
            if video_markers.iter().any(|n| *n != 1) {
                push(out, "prompt", "only <<<video_1>>> may be referenced".into());
            }
            let video_type = str_of("reference_video_type").unwrap_or("base");
            let frames = is_present(body.get("first_frame_image_url")) || is_present(body.get("last_frame_image_url"));
            if video_type == "base" && frames {
                push(
                    out,
                    "reference_video_type",
                    "reference_video_type base cannot be combined with first_frame_image_url or last_frame_image_url; use feature".into(),
                );
            }
        }
    }
}

/// The numbers N of every `<<<{kind}_N>>>` marker in the prompt.
fn markers(prompt: &str, kind: &str) -> Vec<usize> {
    let open = format!("<<<{kind}_");
    let mut found = Vec::new();
    let mut rest = prompt;
    while let Some(start) = rest.find(&open) {
        rest = &rest[start + open.len()..];
        if let Some(end) = rest.find(">>>") {
            // A malformed number is recorded as 0, which is out of range and so reported.
            found.push(rest[..end].parse().unwrap_or(0));
            rest = &rest[end + 3..];
        }
    }
    found
}

/// Checks that `url` is a public http(s) URL whose path ends in one of `extensions`.
pub(crate) fn public_media_url(url: &str, extensions: &[&str]) -> Result<(), String> {
    let lower = url.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://")) else {
        return Err("must be a public http(s) URL".into());
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    if authority.contains('@') {
        return Err("must not contain user information".into());
    }
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    if host.is_empty() || host == "localhost" || host.ends_with(".localhost") {
        return Err("must be a public URL (not localhost)".into());
    }
    if let Ok(ip) = host.parse::<IpAddr>()
        && !is_public(ip)
    {
        return Err(format!("must be a public URL ({ip} is a private or reserved address)"));
    }
    if host.chars().all(|c| c.is_ascii_digit() || c == '.' || c == 'x') && host.parse::<Ipv4Addr>().is_err() {
        return Err("must not use a non-canonical numeric host".into());
    }
    let path = path.split(['?', '#']).next().unwrap_or("");
    if !extensions.iter().any(|ext| path.ends_with(&format!(".{ext}"))) {
        return Err(format!("must end in .{}", extensions.join(", .")));
    }
    Ok(())
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || (a == 192 && b == 0 && c == 0)
                || (a == 192 && b == 88 && c == 99))
        }
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
                || (seg[0] == 0x2001 && seg[1] == 0x0db8)
                || seg[0] == 0x2002
                || (seg[0] & 0xfff0) == 0x3ff0
                || (seg[0] == 0x64 && seg[1] == 0xff9b)
                || (seg[0] == 0x100 && seg[1..4] == [0, 0, 0])
                || (seg[0] == 0x2001 && seg[1] < 0x200)
                || v6 == Ipv6Addr::UNSPECIFIED)
        }
    }
}
