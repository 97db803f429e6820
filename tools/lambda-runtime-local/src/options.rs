//! What Lambda knows about the function before it starts it: its configuration.

use std::time::Duration;

/// The function's configuration, as Lambda's console or template would set it. Defaults are
/// Lambda's own defaults where Lambda has one (128 MB, 3 s timeout, 10 s init limit), so that a
/// test that forgets to configure something meets the stricter value.
#[derive(Clone, Debug)]
pub struct Options {
    /// `AWS_LAMBDA_FUNCTION_NAME`, and part of the invoked function ARN.
    pub function_name: String,
    /// `AWS_LAMBDA_FUNCTION_VERSION`.
    pub function_version: String,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, in MB.
    pub memory_size_mb: u32,
    /// `AWS_REGION` and `AWS_DEFAULT_REGION`, and part of the ARN.
    pub region: String,
    /// The account in the ARN, and `accountId` for extensions that ask for it.
    pub account_id: String,
    /// `_HANDLER`, echoed to extensions at registration.
    pub handler: String,
    /// The function timeout: the whole invoke phase (the runtime's answer and every
    /// extension's next call) must end within it, or the environment is reset.
    pub function_timeout: Duration,
    /// How long the init phase may take before Lambda gives up on it.
    pub init_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            function_name: "local-function".to_string(),
            function_version: "$LATEST".to_string(),
            memory_size_mb: 128,
            region: "us-east-1".to_string(),
            account_id: "123456789012".to_string(),
            handler: "bootstrap".to_string(),
            function_timeout: Duration::from_secs(3),
            init_timeout: Duration::from_secs(10),
        }
    }
}

impl Options {
    /// The ARN Lambda hands to the runtime and to extensions for every invocation.
    pub fn function_arn(&self) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{}",
            self.region, self.account_id, self.function_name
        )
    }
}
