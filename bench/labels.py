"""The operation names used in results, the table and the targets."""

BASELINE = "baseline: GET one row (bare Flask)"
GET_BY_ID = "GET /Users/{id}"
FILTER_USERNAME = 'GET filter userName eq "..."'
FILTER_WORK_EMAIL = 'GET filter emails[type eq "work"].value eq "..."'
DEEP_LIST = "GET list page of 100, near the end"
CREATE = "POST /Users"
PATCH_TITLE = "PATCH replace title"
ADD_BIG = "PATCH add member (big group)"
REMOVE_BIG = "PATCH remove member (big group)"
ADD_SMALL = "PATCH add member (10-member group)"
REMOVE_SMALL = "PATCH remove member (10-member group)"
DELETE = "DELETE /Users/{id}"
SIGN_IN = "POST /sso/login/password (right password)"
SIGN_IN_WRONG = "POST /sso/login/password (wrong password)"
GET_BESIDE_SIGN_INS = "GET /Users/{id}, beside 4 sign-ins"
SIGN_IN_BESIDE_GET = "POST /sso/login/password (right), beside the GETs"
