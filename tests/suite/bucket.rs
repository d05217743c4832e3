//! Object storage against a real S3-compatible server (issue 19, first part): the probe before
//! spending, whole objects, and multipart uploads streamed in 5 MiB parts, finished (size and
//! BLAKE3 checked) or abandoned with no part left behind.

use crate::s3::{S3Server, SECRET_KEY};
use kling_batch::output::bucket::{Bucket, BucketError, BucketUrl, MIN_PART};

fn bucket(server: &S3Server, url: &str, secret: &str) -> Bucket {
    Bucket::from_config(&BucketUrl::parse(url).unwrap(), &server.config(secret)).unwrap()
}

/// Bytes that differ at every offset, so a part in the wrong place shows.
fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

#[tokio::test]
async fn the_probe_tells_a_wrong_secret_and_a_missing_bucket_apart_and_never_shows_the_secret() {
    let server = S3Server::start(&["sweeps"]);
    bucket(&server, "s3://sweeps/lake", SECRET_KEY).probe().await.unwrap();
    // (s3s-fs keeps its own metadata of deleted objects beside the buckets; the bucket is empty.)
    let objects: Vec<_> = server
        .files()
        .into_iter()
        .filter(|p| p.starts_with(server.root().join("sweeps")))
        .collect();
    assert!(objects.is_empty(), "the probe object is deleted: {objects:?}");

    let wrong = "not-the-secret-0123456789";
    let e = bucket(&server, "s3://sweeps/lake", wrong).probe().await.unwrap_err();
    assert!(matches!(e, BucketError::Credentials(_)), "{e:?}");
    assert!(
        !e.to_string().contains(wrong) && !e.to_string().contains(SECRET_KEY),
        "{e}"
    );

    let e = bucket(&server, "s3://nowhere/lake", SECRET_KEY)
        .probe()
        .await
        .unwrap_err();
    assert!(matches!(e, BucketError::NoBucket { .. }), "{e:?}");
    assert!(!e.to_string().contains(SECRET_KEY), "{e}");
}

#[tokio::test]
async fn a_multipart_upload_streams_in_parts_and_is_checked_when_finished() {
    let server = S3Server::start(&["sweeps"]);
    let b = bucket(&server, "s3://sweeps/lake", SECRET_KEY);
    let body = data(2 * MIN_PART + 123_457);
    let id = b.begin("videos/job-1.mp4").await.unwrap();
    let mut writer = b.writer("videos/job-1.mp4", id);
    for chunk in body.chunks(64 * 1024) {
        writer.write(chunk).await.unwrap();
    }
    let done = writer.finish().await.unwrap();
    assert_eq!(done.bytes, body.len() as u64);
    assert_eq!(done.checksum, format!("blake3:{}", blake3::hash(&body).to_hex()));
    let stored = std::fs::read(server.root().join("sweeps/lake/videos/job-1.mp4")).unwrap();
    assert!(stored == body, "the object is the bytes streamed, in order");
    assert_eq!(b.size("videos/job-1.mp4").await.unwrap(), Some(body.len() as u64));

    // A whole object at once, and an empty upload.
    b.put("results.csv", b"job_id\n".to_vec()).await.unwrap();
    assert_eq!(
        std::fs::read(server.root().join("sweeps/lake/results.csv")).unwrap(),
        b"job_id\n"
    );
    let id = b.begin("videos/empty.mp4").await.unwrap();
    assert_eq!(b.writer("videos/empty.mp4", id).finish().await.unwrap().bytes, 0);
}

#[tokio::test]
async fn an_upload_left_by_a_killed_run_is_aborted_by_its_recorded_id_and_leaves_nothing() {
    let server = S3Server::start(&["sweeps"]);
    let b = bucket(&server, "s3://sweeps/lake", SECRET_KEY);
    let before = server.files();
    // A run records the id, sends a part, and is killed: the writer is simply dropped.
    let id = b.begin("videos/job-2.mp4").await.unwrap();
    let mut writer = b.writer("videos/job-2.mp4", id.clone());
    writer.write(&data(MIN_PART + 10)).await.unwrap();
    drop(writer);
    assert!(server.files().len() > before.len(), "the server holds the part sent");
    // The resume aborts it by the recorded id: no part, and no object under the final name.
    b.abort("videos/job-2.mp4", &id).await.unwrap();
    assert_eq!(server.files(), before, "no part of the abandoned upload is left");
    assert_eq!(b.size("videos/job-2.mp4").await.unwrap(), None);
    // (Aborting it again is 404 NoSuchUpload at S3, taken as done; s3s-fs answers 403, so a resume
    // records each abort and does not repeat it.)
}
