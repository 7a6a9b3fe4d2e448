/// `url` without user info, query or fragment: the parts of a URL that may carry credentials
/// (`s3://key:secret@bucket`, an Azure SAS token). Works on unparsable input too, since that is
/// exactly what error messages echo.
pub(crate) fn redact_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_user_info_query_and_fragment() {
        assert_eq!(redact_url("s3://bucket/prefix"), "s3://bucket/prefix");
        assert_eq!(redact_url("s3://AKIA:secret@bucket/p"), "s3://***@bucket/p");
        assert_eq!(redact_url("az://c/p?sig=secret"), "az://c/p");
        assert_eq!(redact_url("http://u:p@host:9000"), "http://***@host:9000");
        assert_eq!(redact_url("/tmp/x@y/z"), "/tmp/x@y/z");
        assert_eq!(redact_url("file:///tmp/a@b"), "file:///tmp/a@b");
    }
}
