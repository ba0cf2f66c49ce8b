"""IPS fidelity over time: each site's IPS-25 reviews, its improvement plans, the site reports
and the scale's own behaviour (psychometrics), from the ips_fidelity project's store."""
