//! CloudFront by voice against moto: "clear the cache of my website" invalidates everything
//! of the one managed distribution through the gate; with several, the person names the
//! site (asked when voxgate cannot tell); an unmanaged distribution is refused.
#![allow(clippy::unwrap_used)]

mod common;

use aws_sdk_cloudfront::types::{
    Aliases, DefaultCacheBehavior, DistributionConfig, DistributionConfigWithTags, Origin, Origins,
    S3OriginConfig, Tag, Tags, ViewerProtocolPolicy,
};
use common::aws::sdk_in;
use common::scene::*;
use common::*;

/// A distribution serving `alias`, tagged managed or not; its id.
async fn distribution(client: &aws_sdk_cloudfront::Client, alias: &str, managed: bool) -> String {
    let origin = Origin::builder()
        .id("origin")
        .domain_name("origin.s3.amazonaws.com")
        .s3_origin_config(S3OriginConfig::builder().origin_access_identity("").build())
        .build()
        .unwrap();
    let config = DistributionConfig::builder()
        .caller_reference(format!("ref-{alias}"))
        .comment(format!("the {alias} site"))
        .enabled(true)
        .aliases(Aliases::builder().quantity(1).items(alias).build().unwrap())
        .origins(
            Origins::builder()
                .quantity(1)
                .items(origin)
                .build()
                .unwrap(),
        )
        .default_cache_behavior(
            DefaultCacheBehavior::builder()
                .target_origin_id("origin")
                .viewer_protocol_policy(ViewerProtocolPolicy::AllowAll)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let tags = Tags::builder()
        .items(
            Tag::builder()
                .key("voxgate:managed")
                .value(if managed { "true" } else { "false" })
                .build()
                .unwrap(),
        )
        .build();
    let out = client
        .create_distribution_with_tags()
        .distribution_config_with_tags(
            DistributionConfigWithTags::builder()
                .distribution_config(config)
                .tags(tags)
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.distribution().unwrap().id().to_owned()
}

fn invalidations(scene: &Scene) -> Vec<String> {
    scene
        .proxy
        .captured
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.path.contains("/invalidation"))
        .map(|c| c.path.clone())
        .collect()
}

#[tokio::test]
async fn the_cache_of_the_named_managed_site_is_cleared_by_voice() {
    let scene = scene(Backend::Sqlite).await;
    let none = scene.ask("ClearCacheIntent", &[]).await;
    assert_eq!(
        speech(&none),
        "You don't have any CloudFront distributions, so there's no cache to clear. Nothing \
         was changed."
    );

    let client = aws_sdk_cloudfront::Client::new(&sdk_in(&scene.account, "us-east-1").await);
    let shop = distribution(&client, "shop.example.com", true).await;
    let only = scene.ask("ClearCacheIntent", &[]).await;
    assert_eq!(
        speech(&only),
        "I'll clear the whole cache of shop.example.com in prod, once you say the code from \
         your voxgate app."
    );
    let done = scene.approve(&only).await;
    assert_eq!(
        speech(&done),
        "Clearing the cache of shop.example.com now. CloudFront usually takes a few minutes."
    );
    assert_eq!(
        invalidations(&scene),
        vec![format!("/2020-05-31/distribution/{shop}/invalidation")]
    );
    let card = done["response"]["card"]["content"].as_str().unwrap();
    assert!(card.contains("CloudFront invalidation "), "{card}");

    // Two sites: which one?
    distribution(&client, "blog.example.com", false).await;
    let asked = scene.ask("ClearCacheIntent", &[]).await;
    assert_eq!(
        speech(&asked),
        "Which site: blog.example.com or shop.example.com?"
    );
    assert_eq!(asked["response"]["directives"][0]["slotToElicit"], "site");
    let held = scene.ask("ClearCacheIntent", &[("site", "shop")]).await;
    assert!(
        speech(&held).starts_with("I'll clear the whole cache of shop.example.com in prod"),
        "{held}"
    );
    // The blog is not voxgate's to change.
    let refused = scene.ask("ClearCacheIntent", &[("site", "the blog")]).await;
    assert!(
        speech(&refused).starts_with("blog.example.com isn't managed by voxgate"),
        "{refused}"
    );
    let unknown = scene.ask("ClearCacheIntent", &[("site", "docs")]).await;
    assert_eq!(
        speech(&unknown),
        "I couldn't find a site called docs. You have blog.example.com and shop.example.com. \
         Nothing was changed."
    );
    assert_eq!(invalidations(&scene).len(), 1);
}
