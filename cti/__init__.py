"""CTI side: AMI bridge, call tracking, screen pop, web app, data store, campaigns, reports."""
