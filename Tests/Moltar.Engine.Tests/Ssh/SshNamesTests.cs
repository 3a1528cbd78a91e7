using Moltar.Engine.Ssh;
using Xunit;

namespace Moltar.Engine.Tests.Ssh;

public class SshNamesTests
{
    [Theory]
    [InlineData("10.0.3.17")]
    [InlineData("ip-10-0-3-17.ec2.internal")]
    [InlineData("web_1.example.com")]
    [InlineData("2001:db8::1")]
    [InlineData("::1")]
    [InlineData("[2001:db8::1]")]
    [InlineData("fe80::1%eth0")]
    [InlineData("web-alias")]
    public void Host_names_and_addresses_pass(string host) => Assert.True(SshNames.IsValidHost(host));

    [Theory]
    [InlineData("")]
    [InlineData("x; touch /tmp/pwned")]
    [InlineData("10.0.0.1;id")]
    [InlineData("$(id)")]
    [InlineData("`id`")]
    [InlineData("a'b")]
    [InlineData("a\"b")]
    [InlineData("a b")]
    [InlineData("a|b")]
    [InlineData("a&b")]
    [InlineData("a>b")]
    [InlineData("a\nb")]
    [InlineData("-oProxyCommand=touch /tmp/pwned")]
    [InlineData("-host")]
    [InlineData("[]")]
    [InlineData("ho\u00e9st")]
    public void Shell_metacharacters_and_option_lookalikes_are_not_hosts(string host) => Assert.False(SshNames.IsValidHost(host));

    [Theory]
    [InlineData("ubuntu")]
    [InlineData("ec2-user")]
    [InlineData("deploy.bot_1")]
    [InlineData("jane@corp.example")]
    [InlineData("MACHINE$")]
    public void User_names_pass(string user) => Assert.True(SshNames.IsValidUser(user));

    [Theory]
    [InlineData("")]
    [InlineData("a;b")]
    [InlineData("-oProxyCommand=touch /tmp/pwned")]
    [InlineData("@corp")]
    [InlineData("a b")]
    [InlineData("$(id)")]
    [InlineData("a'b")]
    [InlineData("a$b")]
    [InlineData("$")]
    public void Other_user_names_are_refused(string user) => Assert.False(SshNames.IsValidUser(user));

    [Fact]
    public void A_target_refuses_an_address_with_shell_metacharacters()
    {
        var e = Assert.Throws<ArgumentException>(() => new SshTarget("10.0.0.1; touch /tmp/pwned"));
        Assert.Contains("'10.0.0.1; touch /tmp/pwned' is not a host name or IP address", e.Message);
    }

    [Theory]
    [InlineData("-oProxyCommand=touch /tmp/pwned")]
    [InlineData("bastion;id")]
    [InlineData("a;b@bastion")]
    [InlineData("-l@bastion")]
    public void A_jump_host_with_shell_metacharacters_or_an_option_is_refused(string spec) =>
        Assert.Throws<FormatException>(() => SshJumpHop.ParseList(spec));

    [Fact]
    public void A_connector_refuses_a_user_that_is_not_a_user_name()
    {
        var e = Assert.Throws<SshFailure>(() => new SshConnector(new SshOptions { User = "-oProxyCommand=x", ConfigPath = "none", SystemConfigPath = "none", UseAgent = false }));
        Assert.Equal(SshErrorIds.InvalidConfiguration, e.ErrorId);
    }

    [Fact]
    public void A_display_name_never_carries_control_characters_to_the_terminal()
    {
        var hostile = new SshTarget("10.0.0.1", "i-0abc", "web\u001b]0;owned\u0007-1\r\n\u009b2J");
        Assert.Equal("web?]0;owned?-1???2J", hostile.DisplayName);
        Assert.Equal("web?]0;owned?-1???2J (10.0.0.1)", hostile.ToString());
        Assert.Equal("web-1", new SshTarget("10.0.0.1", "i-0abc", "web-1").DisplayName);
        Assert.Equal("i-0abc", new SshTarget("10.0.0.1", "i-0abc").DisplayName);
    }
}
