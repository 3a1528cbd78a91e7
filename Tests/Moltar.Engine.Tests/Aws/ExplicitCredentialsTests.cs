using Moltar.Engine.Aws;
using Xunit;

namespace Moltar.Engine.Tests.Aws;

public class ExplicitCredentialsTests
{
    [Fact]
    public void Printing_explicit_credentials_never_shows_the_secret_key_or_the_session_token()
    {
        var credentials = new ExplicitCredentials("AKIAEXAMPLE", "secret-key-value", "session-token-value");
        var text = $"{credentials}";
        Assert.Contains("AKIAEXAMPLE", text);
        Assert.DoesNotContain("secret-key-value", text);
        Assert.DoesNotContain("session-token-value", text);
    }
}
