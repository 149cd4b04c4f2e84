//! schema.graphql at the repository root is the generated SDL.

#[test]
fn schema_graphql_equals_the_generated_sdl() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.graphql");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let generated = crmsync_api::sdl();
    if committed != generated && std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(path, &generated).unwrap();
        return;
    }
    assert!(
        committed == generated,
        "schema.graphql is stale: run `UPDATE_SCHEMA=1 cargo test -p crmsync-api --test it schema` and commit it"
    );
}
