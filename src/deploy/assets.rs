//! The toolkit stack (one per app and region: the asset bucket and the stage
//! lock table) and what goes in the bucket: Lambda bundles under
//! `<app>/<sha256>.zip`, uploaded only when missing (in parts when large: see
//! `upload`), and templates too large to send inline.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::cfn::TemplateSource;
use super::{Error, Event, Reporter};
use crate::aws::describe_error;

/// CloudFormation's limit for an inline TemplateBody.
pub const INLINE_TEMPLATE_LIMIT: usize = crate::aws::INLINE_TEMPLATE_LIMIT;

/// The toolkit's output that names the bucket.
pub const BUCKET_OUTPUT: &str = "AssetsBucketName";
/// The toolkit's output that names the stage lock table (see `deploy::lock`).
pub const LOCK_TABLE_OUTPUT: &str = "LockTableName";

/// `barkctl-<app>-toolkit`: one per app and region, shared by every stage.
pub fn toolkit_stack_name(app: &str) -> String {
    format!("barkctl-{app}-toolkit")
}

/// The toolkit template: an encrypted, versioned, non-public bucket whose old
/// object versions expire (bundles are content-addressed, so only overwritten
/// templates ever leave old versions), and the stage lock table (one item per
/// stage while a deploy or destroy runs; named, so a lock is found without
/// reading outputs).
pub fn toolkit_template(app: &str) -> Value {
    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!("barkctl toolkit for {app}: Lambda bundles, large templates and stage locks"),
        "Resources": {
            "LockTable": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "TableName": super::lock::table_name(app),
                    "BillingMode": "PAY_PER_REQUEST",
                    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}]
                }
            },
            "AssetsBucket": {
                "Type": "AWS::S3::Bucket",
                // Deployed functions keep pointing at their bundles: never drop them
                // with the toolkit.
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": {
                    "BucketEncryption": {
                        "ServerSideEncryptionConfiguration": [
                            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                        ]
                    },
                    "VersioningConfiguration": {"Status": "Enabled"},
                    "PublicAccessBlockConfiguration": {
                        "BlockPublicAcls": true,
                        "BlockPublicPolicy": true,
                        "IgnorePublicAcls": true,
                        "RestrictPublicBuckets": true
                    },
                    "LifecycleConfiguration": {
                        "Rules": [{
                            "Id": "expire-old-versions",
                            "Status": "Enabled",
                            "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
                            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}
                        }]
                    }
                }
            }
        },
        "Outputs": {
            BUCKET_OUTPUT: {"Value": {"Ref": "AssetsBucket"}},
            LOCK_TABLE_OUTPUT: {"Value": {"Ref": "LockTable"}}
        }
    })
}

pub fn toolkit_tags(app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("barkctl:app".to_string(), app.to_string()),
        ("barkctl:stack".to_string(), "toolkit".to_string()),
    ])
}

/// A file to put in the asset bucket.
#[derive(Debug, Clone)]
pub struct Asset {
    pub key: String,
    pub path: PathBuf,
    pub bytes: u64,
}

/// One ListObjectsV2 page under `prefix` (only list permission needed, and no
/// 403/404 ambiguity as with HeadObject).
async fn list_page(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    max_keys: Option<i32>,
    delimiter: Option<&str>,
) -> Result<aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output, Error> {
    s3.list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .set_max_keys(max_keys)
        .set_delimiter(delimiter.map(String::from))
        .send()
        .await
        .map_err(|e| Error::Aws {
            stack: None,
            operation: "ListObjectsV2",
            message: describe_error(&e),
        })
}

/// Is `key` in `bucket` already? (ListObjectsV2 on the key as prefix.)
async fn exists(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<bool, Error> {
    let out = list_page(s3, bucket, key, Some(1), None).await?;
    Ok(out.contents().iter().any(|o| o.key() == Some(key)))
}

/// The folder of `key`, with its trailing `/` (`app/` of `app/<sha>.zip`).
fn folder_of(key: &str) -> &str {
    key.rfind('/').map_or("", |i| &key[..=i])
}

/// The keys one listing of `folder` (`listed`, all of it when `complete`) does
/// not settle: not listed, and either in another folder or the listing was cut.
fn unsettled<'k>(
    keys: &[&'k str],
    folder: &str,
    listed: &BTreeSet<String>,
    complete: bool,
) -> Vec<&'k str> {
    keys.iter()
        .copied()
        .filter(|k| !(listed.contains(*k) || (complete && folder_of(k) == folder)))
        .collect()
}

/// Which of `keys` are in `bucket` already, in one ListObjectsV2 where it can:
/// bundles share one folder (`<app>/`), so one page of that folder (delimiter
/// `/`, up to 1,000 keys) answers for all of them. Keys the page does not settle
/// (see `unsettled`) are asked one by one, so this costs at most one request more
/// than asking each.
async fn existing(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    keys: &[&str],
) -> Result<BTreeSet<String>, Error> {
    let Some(first) = keys.first() else {
        return Ok(BTreeSet::new());
    };
    let folder = folder_of(first);
    let page = list_page(s3, bucket, folder, None, Some("/")).await?;
    let mut found: BTreeSet<String> = page
        .contents()
        .iter()
        .filter_map(|o| o.key())
        .map(String::from)
        .collect();
    let complete = !page.is_truncated().unwrap_or(false);
    for key in unsettled(keys, folder, &found, complete) {
        if exists(s3, bucket, key).await? {
            found.insert(key.to_string());
        }
    }
    Ok(found)
}

/// Upload each of `assets` whose key is not there already.
pub async fn upload_all(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    assets: &[&Asset],
    reporter: &dyn Reporter,
) -> Result<(), Error> {
    let keys: Vec<&str> = assets.iter().map(|a| a.key.as_str()).collect();
    let present = existing(s3, bucket, &keys).await?;
    for asset in assets {
        if present.contains(&asset.key) {
            reporter.event(&Event::Asset {
                key: asset.key.clone(),
                uploaded: false,
                bytes: asset.bytes,
            });
        } else {
            put_asset(s3, bucket, asset, reporter).await?;
        }
    }
    Ok(())
}

async fn put_asset(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    asset: &Asset,
    reporter: &dyn Reporter,
) -> Result<(), Error> {
    // The file's size now, not the build's note of it: what is sent is what is read.
    let bytes = std::fs::metadata(&asset.path)
        .map_err(|e| Error::Read {
            path: asset.path.clone(),
            source: e,
        })?
        .len();
    super::upload::put(
        s3,
        bucket,
        &asset.key,
        super::upload::Body::File(&asset.path),
        bytes,
        Some("application/zip"),
    )
    .await
    .map_err(|f| Error::Aws {
        stack: None,
        operation: f.operation,
        message: f.message,
    })?;
    reporter.event(&Event::Asset {
        key: asset.key.clone(),
        uploaded: true,
        bytes: asset.bytes,
    });
    Ok(())
}

/// The S3 URL CloudFormation reads a template from. AWS-style (not the
/// endpoint's URL): CloudFormation fetches it itself, and emulators map it.
/// The host follows the region's partition (`amazonaws.com.cn` in China).
pub fn template_url(region: &str, bucket: &str, key: &str) -> String {
    if region == "us-east-1" {
        format!("https://s3.amazonaws.com/{bucket}/{key}")
    } else {
        format!(
            "https://s3.{region}.{}/{bucket}/{key}",
            crate::aws::dns_suffix(region)
        )
    }
}

/// Inline body, or (over 51,200 bytes) an uploaded copy addressed by URL.
pub async fn template_source(
    s3: &aws_sdk_s3::Client,
    bucket: Option<&str>,
    region: &str,
    app: &str,
    stack_name: &str,
    body: String,
) -> Result<TemplateSource, Error> {
    if body.len() <= INLINE_TEMPLATE_LIMIT {
        return Ok(TemplateSource::Body(body));
    }
    if body.len() > crate::aws::TEMPLATE_URL_LIMIT {
        return Err(Error::TemplateTooLarge {
            stack_name: stack_name.to_string(),
            bytes: body.len(),
        });
    }
    let Some(bucket) = bucket else {
        return Err(Error::Aws {
            stack: Some(stack_name.to_string()),
            operation: "CreateChangeSet",
            message: format!(
                "the template is {} bytes (over {INLINE_TEMPLATE_LIMIT}) and no asset bucket is available",
                body.len()
            ),
        });
    };
    let hash = hex::encode(Sha256::digest(body.as_bytes()));
    let key = format!("{app}/templates/{stack_name}/{hash}.json");
    let present = exists(s3, bucket, &key).await?;
    if !present {
        let bytes = body.len() as u64;
        super::upload::put(
            s3,
            bucket,
            &key,
            super::upload::Body::Bytes(body.into_bytes()),
            bytes,
            Some("application/json"),
        )
        .await
        .map_err(|f| Error::Aws {
            stack: Some(stack_name.to_string()),
            operation: f.operation,
            message: f.message,
        })?;
    }
    Ok(TemplateSource::Url(template_url(region, bucket, &key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_listing_of_the_bundle_folder_settles_every_bundle_key_in_it() {
        let keys = [
            "app/a.zip",
            "app/b.zip",
            "app/templates/s/t.json",
            "other/c.zip",
        ];
        let listed = BTreeSet::from(["app/a.zip".to_string()]);
        // Complete page: a listed key and an unlisted one of the folder are both
        // settled; keys of other folders are asked one by one.
        assert_eq!(
            unsettled(&keys, "app/", &listed, true),
            ["app/templates/s/t.json", "other/c.zip"]
        );
        // A cut page settles only what it listed.
        assert_eq!(
            unsettled(&keys, "app/", &listed, false),
            ["app/b.zip", "app/templates/s/t.json", "other/c.zip"]
        );
        assert_eq!(folder_of("app/a.zip"), "app/");
        assert_eq!(folder_of("a.zip"), "");
    }

    #[test]
    fn toolkit_bucket_is_encrypted_versioned_private_and_expires_old_versions() {
        let t = toolkit_template("barkbase");
        let p = &t["Resources"]["AssetsBucket"]["Properties"];
        assert_eq!(p["VersioningConfiguration"]["Status"], "Enabled");
        assert_eq!(
            p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
                ["ServerSideEncryptionByDefault"]["SSEAlgorithm"],
            "AES256"
        );
        assert_eq!(
            p["PublicAccessBlockConfiguration"]["BlockPublicPolicy"],
            true
        );
        assert_eq!(
            p["LifecycleConfiguration"]["Rules"][0]["NoncurrentVersionExpiration"]
                ["NoncurrentDays"],
            30
        );
        assert!(crate::render::check::check(&t).is_empty());
    }

    #[test]
    fn toolkit_has_the_named_stage_lock_table_keyed_by_pk() {
        let t = toolkit_template("barkbase");
        let p = &t["Resources"]["LockTable"]["Properties"];
        assert_eq!(p["TableName"], "barkctl-barkbase-locks");
        assert_eq!(p["KeySchema"][0]["AttributeName"], "pk");
        assert_eq!(p["BillingMode"], "PAY_PER_REQUEST");
        assert_eq!(t["Outputs"][LOCK_TABLE_OUTPUT]["Value"]["Ref"], "LockTable");
    }

    #[test]
    fn template_urls_are_aws_style() {
        assert_eq!(
            template_url("us-east-1", "b", "k/t.json"),
            "https://s3.amazonaws.com/b/k/t.json"
        );
        assert_eq!(
            template_url("eu-west-1", "b", "k"),
            "https://s3.eu-west-1.amazonaws.com/b/k"
        );
        assert_eq!(
            template_url("cn-north-1", "b", "k"),
            "https://s3.cn-north-1.amazonaws.com.cn/b/k"
        );
    }
}
