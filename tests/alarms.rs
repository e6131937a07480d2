//! CloudWatch alarms by voice against moto: which alarms are firing (named as people call
//! them), and a CPU alarm on a managed instance through the gate; percentages outside 1 to
//! 100 are asked for again, unmanaged instances refused.
#![allow(clippy::unwrap_used)]

mod common;

use aws_sdk_cloudwatch::types::StateValue;
use common::aws::sdk_in;
use common::scene::*;
use common::*;

#[tokio::test]
async fn a_cpu_alarm_is_set_by_voice_and_reported_when_it_fires() {
    let scene = scene(Backend::Sqlite).await;
    let quiet = scene.ask("AlarmsFiringIntent", &[]).await;
    assert_eq!(speech(&quiet), "In Ireland, no alarm is firing.");

    let held = scene
        .ask(
            "CpuAlarmIntent",
            &[("instance", "web one"), ("percent", "80")],
        )
        .await;
    assert_eq!(
        speech(&held),
        "I'll alert when web-1's CPU is over 80 percent, in prod, Ireland, once you say the \
         code from your voxgate app."
    );
    let done = scene.approve(&held).await;
    assert_eq!(
        speech(&done),
        "Done. The alarm fires when web-1's CPU is over 80 percent."
    );

    let cloudwatch = aws_sdk_cloudwatch::Client::new(&sdk_in(&scene.account, "eu-west-1").await);
    let name = format!("voxgate-cpu-{}", scene.web1);
    let alarms = cloudwatch
        .describe_alarms()
        .alarm_names(&name)
        .send()
        .await
        .unwrap();
    let alarm = &alarms.metric_alarms()[0];
    assert_eq!(alarm.threshold(), Some(80.0));
    assert_eq!(alarm.metric_name(), Some("CPUUtilization"));
    assert_eq!(alarm.dimensions()[0].value(), Some(scene.web1.as_str()));

    // The same threshold again: nothing to hold. Another one: an update, read back with the
    // threshold it has now.
    let same = scene
        .ask(
            "CpuAlarmIntent",
            &[("instance", "web one"), ("percent", "80")],
        )
        .await;
    assert!(speech(&same).contains("nothing to do"), "{same}");
    // The owner wires the alarm to a notification topic; an update keeps it.
    let topic = "arn:aws:sns:eu-west-1:123456789012:ops-pager";
    cloudwatch
        .put_metric_alarm()
        .alarm_name(&name)
        .namespace("AWS/EC2")
        .metric_name("CPUUtilization")
        .dimensions(
            aws_sdk_cloudwatch::types::Dimension::builder()
                .name("InstanceId")
                .value(&scene.web1)
                .build(),
        )
        .statistic(aws_sdk_cloudwatch::types::Statistic::Average)
        .period(300)
        .evaluation_periods(1)
        .threshold(80.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
        .alarm_actions(topic)
        .send()
        .await
        .unwrap();
    let held = scene
        .ask(
            "CpuAlarmIntent",
            &[("instance", "web one"), ("percent", "90")],
        )
        .await;
    assert!(speech(&held).contains("(now 80 percent)"), "{held}");
    scene.approve(&held).await;
    let alarms = cloudwatch
        .describe_alarms()
        .alarm_names(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(alarms.metric_alarms()[0].threshold(), Some(90.0));
    assert_eq!(
        alarms.metric_alarms()[0].alarm_actions(),
        [topic.to_owned()]
    );

    cloudwatch
        .set_alarm_state()
        .alarm_name(&name)
        .state_value(StateValue::Alarm)
        .state_reason("test")
        .send()
        .await
        .unwrap();
    let firing = scene.ask("AlarmsFiringIntent", &[]).await;
    assert_eq!(
        speech(&firing),
        "In Ireland, 1 alarm is firing: web-1's CPU alarm."
    );
    let card = firing["response"]["card"]["content"].as_str().unwrap();
    assert!(card.contains(&name), "{card}");
}

#[tokio::test]
async fn bad_percentages_are_asked_again_and_unmanaged_instances_refused() {
    let scene = scene(Backend::Sqlite).await;
    for bad in ["0", "101", "-5", "?"] {
        let asked = scene
            .ask(
                "CpuAlarmIntent",
                &[("instance", "web one"), ("percent", bad)],
            )
            .await;
        assert_eq!(
            speech(&asked),
            format!(
                "{bad} isn't a percentage I can use: say a whole number from 1 to 100. Over \
                 what percentage?"
            )
        );
        assert_eq!(
            asked["response"]["directives"][0]["slotToElicit"],
            "percent"
        );
    }
    let refused = scene
        .ask(
            "CpuAlarmIntent",
            &[("instance", "db one"), ("percent", "80")],
        )
        .await;
    assert!(
        speech(&refused).starts_with("db-1 isn't managed by voxgate"),
        "{refused}"
    );
    assert!(scene.nothing_held().await);
    assert_eq!(count(&scene.proxy, "PutMetricAlarm"), 0);
    assert!(
        outcomes(&scene.server)
            .await
            .contains(&"refused-by-tag-guard".to_owned())
    );
}
