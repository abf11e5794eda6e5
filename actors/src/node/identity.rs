//! A data dir knows which cluster and node it belongs to: a node refuses another's.

use super::NodeSettings;
use backwaters_storage::Store;

/// Records the cluster and node id on first start; refuses a data dir of another node.
pub(super) fn check_identity(store: &Store, s: &NodeSettings) -> Result<String, String> {
    let ident = format!("{}/{}", s.cluster_name, s.node_id);
    match store.meta_get("identity").map_err(|e| e.to_string())? {
        Some(v) if v != ident.as_bytes() => Err(format!(
            "data dir {} belongs to {:?}, not cluster {:?} node {}; use another --data-dir or the right config",
            s.data_dir.display(),
            String::from_utf8_lossy(&v),
            s.cluster_name,
            s.node_id
        )),
        Some(_) => Ok(String::from_utf8_lossy(&store.meta_get("cluster_id").map_err(|e| e.to_string())?.unwrap_or_default()).into_owned()),
        None => {
            let id = cluster_uuid(&s.cluster_name);
            store.meta_put("identity", ident.as_bytes()).map_err(|e| e.to_string())?;
            store.meta_put("cluster_id", id.as_bytes()).map_err(|e| e.to_string())?;
            store.flush().map_err(|e| e.to_string())?;
            Ok(id)
        }
    }
}

/// A Kafka-style cluster id (22 URL-safe base64 characters of 128 bits), the same on every
/// node of a cluster: derived from the cluster name, so nodes agree on it without a round of
/// messages before they can answer Metadata. (Data dirs keep the id they first stored.)
fn cluster_uuid(cluster_name: &str) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let n = (0u32..4).fold(0u128, |acc, i| {
        let h = crc32c::crc32c_append(crc32c::crc32c(&i.to_be_bytes()), cluster_name.as_bytes());
        (acc << 32) | h as u128
    });
    (0..22).map(|i| A[((n >> (i * 6)) & 63) as usize] as char).collect()
}
