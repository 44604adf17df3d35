"""The Pusher's executor: blessed models published as complete version directories or not at all."""
