"""Robot notifications (contract §8): alert transitions and 开播/下播 posted to DingTalk,
WeCom and Feishu group robots, once across any number of processes (docs/NOTIFY.md).

Entry points: notify.config.load_robots (LIVESALES_NOTIFY_FILE) and check_public_url
(LIVESALES_PUBLIC_URL); notify.service.Notifications (a process's detector and sender),
or notify.detector.Detector and notify.sender.Sender alone; notify.records.latest
(GET /v1/notifications); notify.metrics.NotifyMetrics.
"""
