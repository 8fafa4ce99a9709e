//! Blob endpoints (spec.md "Pulling blobs", "Deleting Blobs"): `GET`/`HEAD
//! /v2/<name>/blobs/<digest>` with single `Range` requests, and `DELETE`.

use super::error::{ApiError, ApiResult, Code};
use super::{blocking, digest, header_str, Shared};
use crate::reference::Name;
use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::io::{Read, Seek, SeekFrom};

/// Blobs up to this size are read whole and sent from memory; larger ones stream.
const INLINE_MAX: u64 = 4 * 1024 * 1024;

/// Parses `bytes=START-END`, `bytes=START-` or `bytes=-SUFFIX` against `size`.
/// `Ok(None)`: no usable range (serve everything); `Err`: unsatisfiable (416).
fn parse_range(h: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // multiple ranges: answer with the whole blob
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (start, end) = if a.is_empty() {
        let n: u64 = b.trim().parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (size.saturating_sub(n), size.saturating_sub(1))
    } else {
        let start: u64 = a.trim().parse().map_err(|_| ())?;
        let end = if b.trim().is_empty() {
            size.saturating_sub(1)
        } else {
            b.trim()
                .parse::<u64>()
                .map_err(|_| ())?
                .min(size.saturating_sub(1))
        };
        (start, end)
    };
    if size == 0 || start >= size || end < start {
        return Err(());
    }
    Ok(Some((start, end)))
}

pub async fn get(
    st: &Shared,
    name: &Name,
    d: &str,
    headers: &HeaderMap,
    head: bool,
) -> ApiResult<Response> {
    let d = digest(d)?;
    let range = header_str(headers, &header::RANGE).map(str::to_string);
    let st2 = st.clone();
    let name2 = name.clone();
    let d2 = d.clone();
    // Resolve, open and (for small blobs) read in one blocking hop.
    let (size, file, inline) = blocking(move || {
        let size = st2.store.blob_in_repo(&name2, &d2)?.ok_or_else(|| {
            ApiError::new(
                Code::BlobUnknown,
                format!("blob {d2} is unknown to {name2}"),
            )
        })?;
        if head {
            // A HEAD is how a pushing client decides not to send a blob: mark it used so
            // a concurrent GC keeps it for the manifest that will follow.
            st2.store.touch_blob(&d2);
            return Ok((size, None, None));
        }
        let mut f = std::fs::File::open(st2.store.blob_path(&d2))?;
        if range.is_none() && size <= INLINE_MAX {
            let mut buf = Vec::with_capacity(size as usize);
            f.read_to_end(&mut buf)?;
            return Ok((size, None, Some(buf)));
        }
        Ok((size, Some(f), None))
    })
    .await?;
    let range_hdr = header_str(headers, &header::RANGE);
    let range = match range_hdr.map(|h| parse_range(h, size)) {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(r))) => Some(r),
        Some(Err(())) => {
            return Ok((
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{size}"))],
            )
                .into_response())
        }
    };
    let mut b = Response::builder()
        .header("docker-content-digest", d.to_string())
        .header(header::ETAG, format!("\"{d}\""))
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, "application/octet-stream");
    let (status, len, body) = match (range, inline, file) {
        (_, Some(buf), _) => (StatusCode::OK, size, Body::from(buf)),
        (Some((start, end)), _, Some(mut f)) => {
            b = b.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"));
            let len = end - start + 1;
            let f = blocking(move || {
                f.seek(SeekFrom::Start(start))?;
                Ok(f)
            })
            .await?;
            let rd = tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(f), len);
            (
                StatusCode::PARTIAL_CONTENT,
                len,
                Body::from_stream(tokio_util::io::ReaderStream::with_capacity(rd, 1024 * 1024)),
            )
        }
        (None, _, Some(f)) => {
            let rd = tokio::fs::File::from_std(f);
            (
                StatusCode::OK,
                size,
                Body::from_stream(tokio_util::io::ReaderStream::with_capacity(rd, 1024 * 1024)),
            )
        }
        (_, None, None) => (StatusCode::OK, size, Body::empty()),
    };
    b = b.status(status).header(header::CONTENT_LENGTH, len);
    let body = if head { Body::empty() } else { body };
    b.body(body).map_err(ApiError::internal)
}

/// `DELETE /v2/<name>/blobs/<digest>`: unlinks the blob from the repository (202). The
/// bytes stay until `berth registry gc` finds no repository and no manifest using them.
pub async fn delete(st: &Shared, name: &Name, d: &str) -> ApiResult<Response> {
    let d = digest(d)?;
    let st2 = st.clone();
    let name2 = name.clone();
    let removed = blocking(move || Ok(st2.store.unlink_blob(&name2, &d)?)).await?;
    if !removed {
        return Err(ApiError::new(
            Code::BlobUnknown,
            format!("blob is unknown to {name}"),
        ));
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Ok(Some((50, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=5-1", 100), Err(()));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
    }
}
