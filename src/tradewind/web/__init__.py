"""The web component: REST API, authentication, the single-page app and the live stream."""
