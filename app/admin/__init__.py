"""The admin console's API: people, rules (categories, time limits, calendar, regions) and the audit log of
every admin action. Admins manage everything; reviewers manage the grid workers and volunteers of their own
township. Each capability has its own module and blueprint; the audit log (``audit``) is shared by all."""
