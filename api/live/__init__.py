"""The live screens: one shared watcher per channel view (hub, view), the payload each
update carries (payloads), and /summary's answers of bounded age (summaries)."""
