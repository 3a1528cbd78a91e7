using Moltar.Engine.Ssh;
using Xunit;

namespace Moltar.Engine.Tests.Ssh;

/// <summary>Which StrictHostKeyChecking applies: options, then ssh config, then the options' default, then yes.</summary>
public sealed class HostKeyPolicyDefaultTests
{
    private const string Home = "/home/tester";

    private static StrictHostKeyChecking PolicyFor(string configText, SshOptions options) =>
        SshHostSettings.Resolve("web-1", null, null, options, SshConfig.Parse(configText, homeDirectory: Home).Resolve("web-1"), Home)
            .StrictHostKeyChecking;

    [Fact]
    public void Without_any_setting_the_policy_is_yes()
    {
        Assert.Equal(StrictHostKeyChecking.Yes, PolicyFor("", new SshOptions()));
    }

    [Fact]
    public void The_default_from_options_applies_when_ssh_config_says_nothing()
    {
        Assert.Equal(StrictHostKeyChecking.AcceptNew, PolicyFor("Host other\n  StrictHostKeyChecking no\n",
            new SshOptions { DefaultStrictHostKeyChecking = StrictHostKeyChecking.AcceptNew }));
    }

    [Fact]
    public void Ssh_config_wins_over_the_default()
    {
        Assert.Equal(StrictHostKeyChecking.Yes, PolicyFor("Host web-*\n  StrictHostKeyChecking yes\n",
            new SshOptions { DefaultStrictHostKeyChecking = StrictHostKeyChecking.AcceptNew }));
    }

    [Fact]
    public void An_explicit_policy_wins_over_ssh_config_and_the_default()
    {
        Assert.Equal(StrictHostKeyChecking.No, PolicyFor("Host web-*\n  StrictHostKeyChecking yes\n",
            new SshOptions { StrictHostKeyChecking = StrictHostKeyChecking.No, DefaultStrictHostKeyChecking = StrictHostKeyChecking.AcceptNew }));
    }

    [Theory]
    [InlineData("Host web-*\n  StrictHostKeyChecking yes\n", StrictHostKeyChecking.No, StrictHostKeyChecking.Yes)]
    [InlineData("Host web-*\n  StrictHostKeyChecking accept-new\n", StrictHostKeyChecking.No, StrictHostKeyChecking.AcceptNew)]
    [InlineData("Host web-*\n  StrictHostKeyChecking accept-new\n", StrictHostKeyChecking.Yes, StrictHostKeyChecking.Yes)]
    [InlineData("Host web-*\n  StrictHostKeyChecking no\n", StrictHostKeyChecking.AcceptNew, StrictHostKeyChecking.AcceptNew)]
    [InlineData("", StrictHostKeyChecking.No, StrictHostKeyChecking.AcceptNew)]
    public void A_project_files_policy_only_makes_checking_stricter(string config, StrictHostKeyChecking project, StrictHostKeyChecking expected)
    {
        Assert.Equal(expected, PolicyFor(config,
            new SshOptions { StricterHostKeyChecking = project, DefaultStrictHostKeyChecking = StrictHostKeyChecking.AcceptNew }));
    }
}
